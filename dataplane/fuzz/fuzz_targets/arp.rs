#![no_main]
//! ARP: parse never panics; a parsed packet emits back to the same bytes.
use dataplane::wire::arp::{Packet, Repr, PACKET_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(p) = Packet::new_checked(data) else { return };
    let Ok(r) = Repr::parse(&p) else { return };
    let mut out = data[..PACKET_LEN].to_vec();
    r.emit(&mut Packet::new_unchecked(&mut out[..]));
    assert_eq!(out, &data[..PACKET_LEN]);
});
