//! The API's token file parser and token check: any text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use patronus::api::auth::Tokens;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(t) = Tokens::parse(&text) {
        let _ = t.check(&text);
    }
});
