//! What SIP (with its SDP body) and FTP control messages announce.
#![no_main]

use dataplane::dpi::{extract, Proto};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let sender = std::net::IpAddr::from([192, 0, 2, 1]);
    for p in [Proto::Sip, Proto::Ftp] {
        for a in extract::announcements(p, data, sender).into_iter().flatten() {
            assert!(a.port != 0 || p == Proto::Ftp);
        }
    }
    let _ = extract::sdp_media(data);
});
