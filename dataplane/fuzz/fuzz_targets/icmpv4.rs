#![no_main]
//! ICMPv4: parse never panics; what parses survives emit then parse.
use dataplane::wire::icmpv4::{Packet, Repr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(p) = Packet::new_checked(data) else { return };
    let Ok(r) = Repr::parse(&p) else { return };
    let mut out = vec![0u8; r.buffer_len()];
    r.emit(&mut Packet::new_unchecked(&mut out[..]));
    let q = Packet::new_checked(&out[..]).unwrap();
    assert_eq!(Repr::parse(&q).unwrap(), r);
});
