#![no_main]
//! IPv4: parse never panics; a valid header survives emit then parse.
use dataplane::wire::ipv4::{Packet, Repr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(p) = Packet::new_checked(data) else { return };
    let _ = p.payload();
    let _ = p.options();
    let Ok(r) = Repr::parse_with(&p, data.first() == Some(&0x45)) else { return };
    let mut out = vec![0u8; r.buffer_len()];
    r.emit(&mut Packet::new_unchecked(&mut out[..]));
    assert_eq!(Repr::parse(&Packet::new_checked(&out[..]).unwrap()).unwrap(), r);
});
