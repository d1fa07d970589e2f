#![no_main]
//! BFD: arbitrary bytes as control packets through the parser and into a
//! session in each state (Down, Init after the first packet, Up), with the
//! clock running; then the session's timers. Nothing may panic, and a
//! packet that parses re-emits to the same bytes.
use std::time::Duration;

use dataplane::path::bfd::{Session, Timers};
use dataplane::wire::bfd::{Repr, LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let timers = Timers { desired_min_tx: Duration::from_millis(10), required_min_rx: Duration::from_millis(10), detect_mult: 3 };
    let mut s = Session::new(timers, 0x1234_5678, Duration::ZERO);
    let mut now = Duration::ZERO;
    for chunk in data.chunks(LEN + 1) {
        // The extra byte of each chunk moves the clock (0..255 ms).
        let (pkt, dt) = chunk.split_at(chunk.len().min(LEN));
        now += Duration::from_millis(dt.first().copied().unwrap_or(0) as u64);
        if let Ok(r) = Repr::parse(pkt) {
            let mut out = [0u8; LEN];
            r.emit(&mut out).unwrap();
            assert_eq!(Repr::parse(&out), Ok(r));
            let _ = s.receive(&r, now);
        }
        let _ = s.poll(now);
        let _ = (s.tx_interval(), s.detection_time(), s.next_event());
    }
});
