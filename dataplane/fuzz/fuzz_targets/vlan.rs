#![no_main]
//! 802.1Q/QinQ tags: the walk never panics and never reads past the buffer.
use dataplane::wire::{vlan, EtherType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let et = EtherType(u16::from_be_bytes([data[0], data[1]]));
    if let Ok((_, _, off)) = vlan::walk(et, &data[2..]) {
        assert!(off <= data.len() - 2 && off % 4 == 0);
    }
    if let Ok(t) = vlan::Tag::new_checked(&data[2..]) {
        if let Ok(r) = vlan::Repr::parse(&t) {
            let mut out = data[2..6].to_vec();
            r.emit(&mut vlan::Tag::new_unchecked(&mut out[..]));
            assert_eq!(out, &data[2..6]);
        }
    }
});
