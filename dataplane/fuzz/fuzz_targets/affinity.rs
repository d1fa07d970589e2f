#![no_main]
//! Which worker owns a frame: the symmetric hash never panics, agrees for
//! a frame and its reply, and the affinity stage hands a packet only to a
//! worker that exists, never to the one running it.
use dataplane::flow::affinity::{Affinity, Spread};
use dataplane::packet::HeapPool;
use dataplane::pipeline::{Meta, Metas, Stage};
use dataplane::rss;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = rss::device_misplaces(data);
    if let Some(h) = rss::frame_hash(data) {
        // The reply of an untagged IPv4 packet with its options-free header: addresses and ports swapped.
        if data.len() >= 38 && data[12..14] == [0x08, 0x00] && data[14] == 0x45 {
            let mut r = data.to_vec();
            let (s, d) = (r[26..30].to_vec(), r[30..34].to_vec());
            r[26..30].copy_from_slice(&d);
            r[30..34].copy_from_slice(&s);
            let (sp, dp) = (r[34..36].to_vec(), r[36..38].to_vec());
            r[34..36].copy_from_slice(&dp);
            r[36..38].copy_from_slice(&sp);
            assert_eq!(rss::frame_hash(&r), Some(h), "symmetric");
        }
        let _ = rss::source_port(51820, h as u16, h, 1 << (h % 6));
    }
    let pool = HeapPool::new();
    for me in 0..3usize {
        let mut stage = Affinity::new(&Spread { workers: 3, check_ports: vec![0] }, me);
        let mut pkts = vec![pool.packet(data)];
        let mut inner = Meta::NEW;
        inner.set_inner();
        for (port, first) in [(0, Meta::NEW), (1, inner), (1, Meta::NEW)] {
            let mut metas = Metas::uniform_as(1, first);
            stage.process_burst(port, &mut pkts, &mut metas);
            if let Some(w) = metas.get(0).handoff() {
                assert!(w < 3 && w != me, "handed to {w} from {me}");
            }
        }
    }
});
