//! HTTP/1.x request and response heads.
#![no_main]

use dataplane::dpi::http;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(r) = http::request(data) {
        assert!(r.host.is_none_or(|h| h.len() <= data.len()));
    }
    let _ = http::response(data);
});
