//! Flow parsing and every DPI extractor on arbitrary frames: the first
//! byte picks where the walk starts (an Ethernet header, raw IP, or an
//! EtherType in the first two bytes as capture link headers hand over); the rest is a sequence of frames, each
//! prefixed by a 2-byte length, all fed to one flow table so extractor
//! state carries over between them (TLS reassembly, RTP, DNS cache).
#![no_main]

use dataplane::dpi::{App, AppSig, Dpi, Local, Pattern, Proto, SignatureSet};
use dataplane::flow::{account, parse_at, parse_frame, FlowTable, Timeouts};
use dataplane::vocab::Category;
use dataplane::wire::frame::{walk, Ip};
use libfuzzer_sys::fuzz_target;

fn dpi() -> Dpi {
    let mut set = SignatureSet::default();
    for (i, p) in Proto::ALL.iter().enumerate().skip(1) {
        set.apps.push(AppSig {
            app: App { name: format!("p{i}"), category: Category::Web, class: Default::default() },
            hosts: vec![format!("h{i}.example")],
            patterns: vec![Pattern { bytes: vec![i as u8, 0xff], offset: Some(i as u16), depth: 0, proto: 0, within: (i % 2 == 0).then_some(*p) }],
            ports: vec![(17, i as u16)],
            protocol: Some(*p),
            over: None,
            ips: vec![(std::net::IpAddr::from([10, i as u8, 0, 0]), 16)],
        });
    }
    Dpi::compile(&set, 4).unwrap()
}

fuzz_target!(|data: &[u8]| {
    let Some((&l, mut rest)) = data.split_first() else { return };
    static DPI: std::sync::OnceLock<Dpi> = std::sync::OnceLock::new();
    let dpi = DPI.get_or_init(dpi);
    let mut table = FlowTable::new(64, Timeouts::with_hz(1000));
    let mut local = Local::new(16, 2);
    let mut now = 0;
    while rest.len() >= 2 {
        let n = (u16::from_le_bytes([rest[0], rest[1]]) as usize).min(rest.len() - 2);
        let frame = &rest[2..2 + n];
        rest = &rest[2 + n..];
        now += 1;
        let parsed = match l % 3 {
            0 => parse_frame(frame),
            1 => Ip::by_version(frame, 0).and_then(|ip| parse_at(frame, ip)),
            _ => frame.get(..2).and_then(|e| walk(frame, u16::from_be_bytes([e[0], e[1]]), 2)).and_then(|ip| parse_at(frame, ip)),
        };
        let Some(p) = parsed else { continue };
        assert!(p.payload.0 + p.payload.1 <= frame.len());
        let (f, d) = table.lookup_or_insert(&p.key, p.dir, now);
        account(f, d, p.ip_len, &p.l4, now);
        if f.dpi.wants() {
            let (st, view) = f.dpi_parts();
            dpi.inspect(st, view, d, &frame[p.payload.0..p.payload.0 + p.payload.1], &mut local, now);
        }
        table.sweep(now, 1);
    }
});
