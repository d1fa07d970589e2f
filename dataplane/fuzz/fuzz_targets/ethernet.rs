#![no_main]
//! Ethernet: parse never panics; what parses emits back to the same bytes.
use dataplane::wire::ethernet::{Frame, Repr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(f) = Frame::new_checked(data) else { return };
    let r = Repr::parse(&f).expect("checked frame parses");
    let mut out = data.to_vec();
    r.emit(&mut Frame::new_unchecked(&mut out[..]));
    assert_eq!(out, data);
});
