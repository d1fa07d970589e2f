//! DNS messages and the answer cache (compression pointers, truncation,
//! lying lengths), then lookups of what it learnt.
#![no_main]

use dataplane::dpi::dns::{self, DnsCache};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = dns::message(data);
    let mut cache = DnsCache::new(8);
    cache.learn(data, 1);
    for chunk in data.chunks(4) {
        if chunk.len() == 4 {
            let a = std::net::IpAddr::from([chunk[0], chunk[1], chunk[2], chunk[3]]);
            let _ = cache.lookup(a, 443, 1);
        }
    }
});
