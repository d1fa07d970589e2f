#![no_main]
//! ICMPv6 and Neighbor Discovery: parse never panics (with the checksum
//! made valid so the fuzzer reaches the message bodies); what parses
//! survives emit then parse.
use dataplane::wire::icmpv6::{Packet, Repr};
use dataplane::wire::Ipv6Address;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (src, dst) = (Ipv6Address([0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]), Ipv6Address::ALL_NODES);
    let mut buf = data.to_vec();
    let Ok(mut p) = Packet::new_checked(&mut buf[..]) else { return };
    p.fill_checksum(src, dst);
    let p = Packet::new_unchecked(&buf[..]);
    let Ok(r) = Repr::parse(src, dst, &p) else { return };
    let mut out = vec![0u8; r.buffer_len()];
    r.emit(src, dst, &mut Packet::new_unchecked(&mut out[..]));
    let q = Packet::new_checked(&out[..]).unwrap();
    assert_eq!(Repr::parse(src, dst, &q).unwrap(), r);
});
