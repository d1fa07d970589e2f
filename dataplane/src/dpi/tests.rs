use super::*;
use crate::flow::{account, FlowTable, L4Info, Timeouts};
use crate::vocab::FlowKey;

/// A ClientHello sent by `openssl s_client -servername www.youtube.com
/// -alpn h2,http/1.1` (OpenSSL 3.0, Debian 12), captured from the socket.
const HELLO: &[u8] = include_bytes!("testdata/openssl-clienthello-youtube.bin");

fn sigs() -> Dpi {
    let app = |name: &str, cat, hosts: &[&str], protocol| AppSig {
        app: App { name: name.into(), category: cat, class: Default::default() },
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
        patterns: vec![],
        ports: vec![],
        protocol,
        over: None,
        ips: vec![],
    };
    let mut set = SignatureSet::default();
    set.apps.push(app("TLS", Category::Web, &[], Some(Proto::Tls)));
    set.apps.push(app("HTTP", Category::Web, &[], Some(Proto::Http)));
    set.apps.push(app("DNS", Category::NetworkService, &[], Some(Proto::Dns)));
    set.apps.push(app("YouTube", Category::Video, &["youtube.com", "googlevideo.com"], None));
    let mut odd = app("Odd", Category::Gaming, &[], None);
    odd.patterns.push(Pattern { bytes: b"\xfe\xfdODD".to_vec(), offset: Some(2), depth: 0, proto: 17, within: None });
    set.apps.push(odd);
    Dpi::compile(&set, 4).unwrap()
}

struct Rig {
    dpi: Dpi,
    table: FlowTable,
    local: Local,
}

impl Rig {
    fn new() -> Rig {
        Rig { dpi: sigs(), table: FlowTable::new(64, Timeouts::with_hz(1)), local: Local::new(64, 4) }
    }

    /// A packet from client 10.0.0.1:port to server addr:sport (or back).
    fn packet(&mut self, proto: u8, client: u16, server: [u8; 4], sport: u16, to_server: bool, payload: &[u8]) -> FlowDpi {
        let c = crate::vocab::mapped_v4([10, 0, 0, 1]);
        let s = crate::vocab::mapped_v4(server);
        let (k, d) = if to_server { FlowKey::new(c, client, s, sport, proto) } else { FlowKey::new(s, sport, c, client, proto) };
        let l4 = if proto == 6 { L4Info::Tcp { flags: 0x18, seq: 0 } } else { L4Info::Udp };
        let (f, dir) = self.table.lookup_or_insert(&k, d, 5);
        account(f, dir, payload.len(), &l4, 5);
        let (st, view) = f.dpi_parts();
        self.dpi.inspect(st, view, dir, payload, &mut self.local, 5);
        f.dpi
    }
}

#[test]
fn golden_client_hello_gives_sni_and_alpn() {
    match tls::client_hello(HELLO) {
        tls::Hello::Done(h) => {
            assert_eq!(h.sni, b"www.youtube.com");
            assert_eq!(h.alpn, b"h2");
        }
        other => panic!("{other:?}"),
    }
    // Every truncation is partial or invalid, never a panic or a wrong name.
    for cut in 0..HELLO.len() {
        assert!(!matches!(tls::client_hello(&HELLO[..cut]), tls::Hello::Done(_)), "cut {cut}");
    }
}

#[test]
fn a_client_hello_split_over_segments_is_reassembled() {
    let mut r = Rig::new();
    let (a, b, c) = (&HELLO[..7], &HELLO[7..100], &HELLO[100..]);
    assert_eq!(r.packet(6, 5000, [142, 250, 1, 1], 443, true, a).status, Status::Inspecting);
    assert_eq!(r.packet(6, 5000, [142, 250, 1, 1], 443, true, b).status, Status::Inspecting);
    let st = r.packet(6, 5000, [142, 250, 1, 1], 443, true, c);
    assert_eq!(st.status, Status::Decided);
    assert_eq!(r.dpi.app(st.app).name, "YouTube");
    assert_eq!((st.basis, st.category, st.host.as_str(), st.decided_after), (Basis::Host, Category::Video, "www.youtube.com", 3));
}

#[test]
fn tls_without_a_known_name_is_tls() {
    let mut r = Rig::new();
    let mut hello = HELLO.to_vec();
    let at = hello.windows(7).position(|w| w == b"youtube").unwrap();
    hello[at..at + 7].copy_from_slice(b"example");
    let st = r.packet(6, 5001, [1, 2, 3, 4], 443, true, &hello);
    assert_eq!((r.dpi.app(st.app).name.as_str(), st.basis, st.host.as_str()), ("TLS", Basis::Protocol, "www.example.com"));
}

#[test]
fn http_host_names_the_application_and_downloads_are_file_transfers() {
    let mut r = Rig::new();
    let st =
        r.packet(6, 5002, [1, 2, 3, 4], 80, true, b"GET /watch HTTP/1.1\r\nHost: www.YouTube.com:8080\r\nUser-Agent: curl/7.88\r\n\r\n");
    assert_eq!((r.dpi.app(st.app).name.as_str(), st.host.as_str()), ("YouTube", "www.youtube.com"));
    assert!(http::response(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n").unwrap().download);
    assert!(!http::response(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n").unwrap().download);
}

/// A DNS response for `name` with one A record (built field by field, RFC
/// 1035 4.1).
fn dns_response(name: &str, addr: [u8; 4]) -> Vec<u8> {
    let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
    for label in name.split('.') {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.extend_from_slice(&[0, 0, 1, 0, 1]);
    m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
    m.extend_from_slice(&addr);
    m
}

#[test]
fn a_dns_answer_classifies_the_next_flow_on_its_first_packet() {
    let mut r = Rig::new();
    let st = r.packet(17, 40000, [9, 9, 9, 9], 53, false, &dns_response("rr3.googlevideo.com", [173, 194, 1, 7]));
    assert_eq!((r.dpi.app(st.app).name.as_str(), st.category), ("YouTube", Category::NetworkService), "a lookup is network plumbing");
    let st = r.packet(17, 6000, [173, 194, 1, 7], 443, true, b"\x40opaque-short-header-quic");
    assert_eq!((r.dpi.app(st.app).name.as_str(), st.basis, st.decided_after), ("YouTube", Basis::DnsCache, 1));
    assert_eq!(st.category, Category::Video);
    // Truncated DNS never panics.
    let full = dns_response("a.b.c", [1, 1, 1, 1]);
    for cut in 0..full.len() {
        let _ = dns::message(&full[..cut]);
        r.local.dns.learn(&full[..cut], 0);
    }
}

#[test]
fn anchored_patterns_match_only_at_their_offset() {
    let mut r = Rig::new();
    let st = r.packet(17, 7000, [5, 5, 5, 5], 9999, true, b"\x00\x01\xfe\xfdODD rest");
    assert_eq!((r.dpi.app(st.app).name.as_str(), st.basis), ("Odd", Basis::Pattern));
    let st = r.packet(17, 7001, [5, 5, 5, 5], 9999, true, b"\x00\x01\x02\xfe\xfdODD");
    assert_eq!(st.status, Status::Inspecting, "one byte late: no match");
}

#[test]
fn an_unidentified_flow_gives_up_after_its_budget_and_stays_unknown() {
    let mut r = Rig::new();
    for i in 0..3 {
        let st = r.packet(6, 8000, [7, 7, 7, 7], 7777, true, b"zz opaque zz");
        assert_eq!(st.status, Status::Inspecting, "packet {i}");
    }
    let st = r.packet(6, 8000, [7, 7, 7, 7], 7777, true, b"zz opaque zz");
    assert_eq!((st.status, st.decided_after), (Status::GaveUp, 4), "budget: 4 per direction");
    let mut last = FlowDpi::default();
    for _ in 0..4 {
        last = r.packet(6, 8000, [7, 7, 7, 7], 7777, true, b"GET / HTTP/1.1\r\nHost: youtube.com\r\n\r\n");
    }
    assert_eq!((last.status, last.app), (Status::GaveUp, UNKNOWN), "never retried");
}

#[test]
fn bad_signatures_are_refused() {
    let mut set = SignatureSet::default();
    let a = AppSig {
        app: App { name: "A".into(), category: Category::Web, class: Default::default() },
        hosts: vec!["a.com".into()],
        patterns: vec![],
        ports: vec![],
        protocol: None,
        over: None,
        ips: vec![],
    };
    set.apps.push(a.clone());
    set.apps.push(AppSig { app: App { name: "B".into(), ..a.app.clone() }, ..a.clone() });
    let e = Dpi::compile(&set, 8).err().unwrap();
    assert_eq!((e.app, e.field), (1, "hosts"));
    set.apps[1].hosts = vec!["bad host!".into()];
    assert_eq!(Dpi::compile(&set, 8).err().unwrap().field, "hosts");
    set.apps[1] = a;
    assert_eq!(Dpi::compile(&set, 8).err().unwrap().field, "name");
}

/// Client Initial datagrams from two independent QUIC stacks: aioquic 1.x
/// (v1, v2, and a ClientHello of ~3 KiB spread over three Initials) and
/// ngtcp2 0.12 (`gtlsclient`, Debian 12; v1 and draft-29, SNI localhost).
const AIOQUIC_V1: &[u8] = include_bytes!("testdata/aioquic-v1-0.bin");
const AIOQUIC_V2: &[u8] = include_bytes!("testdata/aioquic-v2-0.bin");
const AIOQUIC_SPLIT: [&[u8]; 3] = [
    include_bytes!("testdata/aioquic-v1-split-0.bin"),
    include_bytes!("testdata/aioquic-v1-split-1.bin"),
    include_bytes!("testdata/aioquic-v1-split-2.bin"),
];
const NGTCP2_V1: &[u8] = include_bytes!("testdata/ngtcp2-v1-0.bin");
const NGTCP2_D29: &[u8] = include_bytes!("testdata/ngtcp2-draft29-0.bin");

fn quic_sni(datagrams: &[&[u8]]) -> Vec<quic::Quic<'static>> {
    let mut buf = [0u8; tls::MAX_HELLO];
    let mut have = [0u64; tls::MAX_HELLO / 64];
    let mut scratch = vec![0u8; 65536];
    let mut out = vec![];
    for d in datagrams {
        let mut s = quic::Stream { buf: &mut buf, have: &mut have };
        out.push(match quic::client_initial(d, &mut scratch, &mut s) {
            quic::Quic::Named(n) => quic::Quic::Named(Box::leak(n.to_vec().into_boxed_slice())),
            quic::Quic::More => quic::Quic::More,
            quic::Quic::Opaque => quic::Quic::Opaque,
            quic::Quic::No => quic::Quic::No,
        });
    }
    out
}

#[test]
fn quic_initials_of_v1_v2_and_draft29_are_decrypted_to_their_sni() {
    assert_eq!(quic_sni(&[AIOQUIC_V1]), [quic::Quic::Named(b"www.youtube.com")]);
    assert_eq!(quic_sni(&[AIOQUIC_V2]), [quic::Quic::Named(b"www.youtube.com")]);
    assert_eq!(quic_sni(&[NGTCP2_V1]), [quic::Quic::Named(b"localhost")]);
    assert_eq!(quic_sni(&[NGTCP2_D29]), [quic::Quic::Named(b"localhost")]);
    // A ClientHello over three Initials: two say "more", the third names it.
    assert_eq!(quic_sni(&AIOQUIC_SPLIT), [quic::Quic::More, quic::Quic::More, quic::Quic::Named(b"www.youtube.com")]);
}

#[test]
fn damaged_quic_initials_are_opaque_never_misread() {
    // Any flipped byte past the version breaks the AEAD tag or the header:
    // the result is opaque (or a shorter read), never a wrong name.
    for i in 5..AIOQUIC_V1.len() {
        let mut d = AIOQUIC_V1.to_vec();
        d[i] ^= 0x40;
        let r = quic_sni(&[&d]);
        assert!(matches!(r[0], quic::Quic::Opaque | quic::Quic::Named(b"www.youtube.com")), "byte {i}: {:?}", r[0]);
    }
    // Cut short: opaque, or (once the whole Initial is in and only the
    // datagram's trailing padding is missing) the right name.
    for cut in 0..AIOQUIC_V1.len() {
        let r = quic_sni(&[&AIOQUIC_V1[..cut]]);
        assert!(matches!(r[0], quic::Quic::Opaque | quic::Quic::No | quic::Quic::Named(b"www.youtube.com")), "cut {cut}: {:?}", r[0]);
        assert!(cut >= 500 || !matches!(r[0], quic::Quic::Named(_)), "cut {cut}");
    }
}

#[test]
fn a_quic_flow_is_classified_by_its_decrypted_sni() {
    let mut r = Rig::new();
    let st = r.packet(17, 9000, [142, 250, 1, 1], 443, true, AIOQUIC_V1);
    assert_eq!((r.dpi.app(st.app).name.as_str(), st.basis, st.host.as_str()), ("YouTube", Basis::Host, "www.youtube.com"));
    let mut r = Rig::new();
    for (i, d) in AIOQUIC_SPLIT.iter().enumerate() {
        let st = r.packet(17, 9001, [142, 250, 1, 1], 443, true, d);
        assert_eq!(st.status == Status::Decided, i == 2, "packet {i}");
        if i == 2 {
            assert_eq!((r.dpi.app(st.app).name.as_str(), st.decided_after), ("YouTube", 3));
        }
    }
}

fn rich() -> Dpi {
    let app = |name: &str, cat, protocol| AppSig {
        app: App { name: name.into(), category: cat, class: Default::default() },
        hosts: vec![],
        patterns: vec![],
        ports: vec![],
        protocol,
        over: None,
        ips: vec![],
    };
    let mut set = SignatureSet::default();
    set.apps.push(app("TLS", Category::Web, Some(Proto::Tls)));
    set.apps.push(app("STUN", Category::VoIP, Some(Proto::Stun)));
    set.apps.push(app("SIP", Category::VoIP, Some(Proto::Sip)));
    set.apps.push(app("RTP", Category::VoIP, Some(Proto::Rtp)));
    set.apps.push(app("RTCP", Category::VoIP, Some(Proto::Rtcp)));
    set.apps.push(app("FTP", Category::FileTransfer, Some(Proto::Ftp)));
    let mut imaps = app("IMAPS", Category::Email, None);
    imaps.over = Some(Proto::Tls);
    imaps.ports = vec![(6, 993)];
    set.apps.push(imaps);
    let mut teams = app("Teams", Category::Conferencing, None);
    teams.ips = vec![("52.112.0.0".parse().unwrap(), 14)];
    teams.patterns.push(Pattern { bytes: b"\x80\x70\x00\x04".to_vec(), offset: None, depth: 512, proto: 17, within: Some(Proto::Stun) });
    set.apps.push(teams);
    Dpi::compile(&set, 8).unwrap()
}

/// A STUN binding request with one attribute (RFC 5389 section 6).
fn stun_request(attr: u16) -> Vec<u8> {
    let mut m = vec![0x00, 0x01, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42];
    m.extend_from_slice(&[7; 12]);
    m.extend_from_slice(&attr.to_be_bytes());
    m.extend_from_slice(&[0, 4, 0, 0, 0, 1]);
    m
}

#[test]
fn evidence_ranks_name_pattern_prefix_protocol() {
    let mut r = Rig::new();
    r.dpi = rich();
    // A vendor attribute inside STUN names the application (pattern).
    let st = r.packet(17, 10000, [93, 71, 110, 205], 3478, true, &stun_request(0x8070));
    assert_eq!((r.dpi.app(st.app).name.as_str(), st.basis, st.proto), ("Teams", Basis::Pattern, Proto::Stun));
    // Plain STUN to the vendor's published prefix: the prefix.
    let st = r.packet(17, 10001, [52, 114, 250, 141], 3478, true, &stun_request(0x0006));
    assert_eq!((r.dpi.app(st.app).name.as_str(), st.basis), ("Teams", Basis::Ip));
    // Plain STUN elsewhere: the protocol.
    let st = r.packet(17, 10002, [93, 71, 110, 205], 3478, true, &stun_request(0x0006));
    assert_eq!((r.dpi.app(st.app).name.as_str(), st.basis), ("STUN", Basis::Protocol));
    // The same attribute bytes outside STUN mean nothing.
    let st = r.packet(17, 10003, [93, 71, 110, 205], 9999, true, b"\x01\x02\x80\x70\x00\x04 opaque");
    assert_eq!(st.status, Status::Inspecting);
    // TLS without a name on 993 is IMAPS; on 443 it is TLS.
    let mut hello = HELLO.to_vec();
    let at = hello.windows(7).position(|w| w == b"youtube").unwrap();
    hello[at..at + 7].copy_from_slice(b"example");
    let st = r.packet(6, 10004, [1, 2, 3, 4], 993, true, &hello);
    assert_eq!((r.dpi.app(st.app).name.as_str(), st.basis), ("IMAPS", Basis::Protocol));
    let st = r.packet(6, 10005, [1, 2, 3, 4], 443, true, &hello);
    assert_eq!(r.dpi.app(st.app).name.as_str(), "TLS");
}

#[test]
fn sdp_announces_rtp_and_rtcp_before_their_first_packet() {
    let mut r = Rig::new();
    r.dpi = rich();
    let invite = b"INVITE sip:bob@192.0.2.9 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060\r\nContent-Type: application/sdp\r\n\r\n\
v=0\r\no=alice 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\n";
    let st = r.packet(17, 5060, [192, 0, 2, 9], 5060, true, invite);
    assert_eq!((r.dpi.app(st.app).name.as_str(), st.watch), ("SIP", WATCH_PACKETS));
    // The answer comes later on the same (decided, watched) flow.
    let ok = b"SIP/2.0 200 OK\r\nContent-Type: application/sdp\r\n\r\nv=0\r\nc=IN IP4 192.0.2.9\r\nm=audio 50000 RTP/AVP 0\r\n";
    r.packet(17, 5060, [192, 0, 2, 9], 5060, false, ok);
    // Media from the callee to the caller's announced port: RTP at once,
    // even with a payload no heuristic could name from one packet.
    let st = r.packet(17, 50000, [10, 0, 0, 1], 40000, true, b"\x80\x00");
    assert_eq!((r.dpi.app(st.app).name.as_str(), st.basis, st.decided_after), ("RTP", Basis::Sdp, 1));
    let st = r.packet(17, 40000, [192, 0, 2, 9], 50001, true, b"\x80\xc8");
    assert_eq!((r.dpi.app(st.app).name.as_str(), st.basis), ("RTCP", Basis::Sdp));
}

#[test]
fn ftp_passive_and_extended_passive_replies_announce_the_data_connection() {
    assert_eq!(
        extract::announcements(Proto::Ftp, b"227 Entering Passive Mode (90,130,70,73,100,85).\r\n", "90.130.70.73".parse().unwrap())[0]
            .map(|a| (a.addr.to_string(), a.port)),
        Some(("90.130.70.73".into(), 100 * 256 + 85))
    );
    assert_eq!(
        extract::announcements(Proto::Ftp, b"229 Entering Extended Passive Mode (|||6446|)\r\n", "2001:db8::1".parse().unwrap())[0]
            .map(|a| (a.addr.to_string(), a.port)),
        Some(("2001:db8::1".into(), 6446))
    );
    for junk in [&b"227 Entering Passive Mode (1,2,3)"[..], b"227 (300,1,1,1,1,1)", b"229 (|||x|)", b"PORT ", b"EPRT |1|nope|1|"] {
        assert_eq!(extract::announcements(Proto::Ftp, junk, "1.1.1.1".parse().unwrap())[0], None, "{junk:?}");
    }
}

#[test]
fn a_dns_cache_verdict_yields_to_the_flows_own_name() {
    let mut r = Rig::new();
    // The answer names a CDN host; the connection's SNI names YouTube.
    let mut set = SignatureSet::default();
    for (name, hosts) in [("CDN", vec!["cdn.example".to_owned()]), ("YouTube", vec!["youtube.com".to_owned()])] {
        set.apps.push(AppSig {
            app: App { name: name.into(), category: Category::Web, class: Default::default() },
            hosts,
            patterns: vec![],
            ports: vec![],
            protocol: None,
            over: None,
            ips: vec![],
        });
    }
    r.dpi = Dpi::compile(&set, 4).unwrap();
    r.packet(17, 40001, [9, 9, 9, 9], 53, false, &dns_response("edge.cdn.example", [173, 194, 1, 8]));
    let st = r.packet(6, 6001, [173, 194, 1, 8], 443, true, b"");
    assert_eq!((r.dpi.app(st.app).name.as_str(), st.basis), ("CDN", Basis::DnsCache), "first packet: the cache");
    let st = r.packet(6, 6001, [173, 194, 1, 8], 443, true, HELLO);
    assert_eq!((r.dpi.app(st.app).name.as_str(), st.basis, st.host.as_str()), ("YouTube", Basis::Host, "www.youtube.com"));
    assert!(!st.wants(), "done once the name is read");
}
