#![no_main]
//! IPv6 and its extension-header walk: never panic, never point past the payload.
use dataplane::wire::ipv6::{walk_extensions, Packet, Repr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((&nh, rest)) = data.split_first() {
        if let Ok(up) = walk_extensions(nh, rest) {
            assert!(up.offset <= rest.len());
        }
    }
    let Ok(p) = Packet::new_checked(data) else { return };
    let Ok(r) = Repr::parse(&p) else { return };
    let mut out = vec![0u8; r.buffer_len()];
    r.emit(&mut Packet::new_unchecked(&mut out[..]));
    assert_eq!(Repr::parse(&Packet::new_checked(&out[..]).unwrap()).unwrap(), r);
    let _ = walk_extensions(p.next_header(), p.payload());
});
