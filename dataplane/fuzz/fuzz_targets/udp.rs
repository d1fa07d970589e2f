#![no_main]
//! UDP: parse never panics; what parses survives emit then parse.
use dataplane::wire::udp::{Packet, Repr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(p) = Packet::new_checked(data) else { return };
    let Ok(r) = Repr::parse(&p, None) else { return };
    let mut out = data[..r.buffer_len()].to_vec();
    r.emit(&mut Packet::new_unchecked(&mut out[..]), Some(0x1234));
    assert_eq!(Repr::parse(&Packet::new_checked(&out[..]).unwrap(), Some(0x1234)).unwrap(), r);
});
