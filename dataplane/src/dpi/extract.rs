//! Protocol extractors: recognise a protocol from a flow's first payloads
//! and read the names it carries. Each looks at one payload at a time;
//! what must carry over between packets lives in [`State`] (a few bytes per
//! flow) or, for a TLS ClientHello split over segments, in a reassembly
//! slot of the worker's [`Local`] pool.

use super::dns::{self, DnsCache};
use super::{http, quic, tls, Name};

/// Protocols the extractors recognise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Proto {
    #[default]
    Unknown,
    Tls,
    Http,
    Dns,
    Mdns,
    Quic,
    Ssh,
    Sip,
    Rtp,
    Rtcp,
    Stun,
    BitTorrent,
    MySql,
    Postgres,
    Redis,
    MongoDb,
    Tds,
    WireGuard,
    Ftp,
    Rtmp,
    Dhcp,
    Ssdp,
    NetBios,
    Icmp,
    Igmp,
}

impl Proto {
    pub const ALL: [Proto; 25] = [
        Proto::Unknown,
        Proto::Tls,
        Proto::Http,
        Proto::Dns,
        Proto::Mdns,
        Proto::Quic,
        Proto::Ssh,
        Proto::Sip,
        Proto::Rtp,
        Proto::Rtcp,
        Proto::Stun,
        Proto::BitTorrent,
        Proto::MySql,
        Proto::Postgres,
        Proto::Redis,
        Proto::MongoDb,
        Proto::Tds,
        Proto::WireGuard,
        Proto::Ftp,
        Proto::Rtmp,
        Proto::Dhcp,
        Proto::Ssdp,
        Proto::NetBios,
        Proto::Icmp,
        Proto::Igmp,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Proto::Unknown => "unknown",
            Proto::Tls => "tls",
            Proto::Http => "http",
            Proto::Dns => "dns",
            Proto::Mdns => "mdns",
            Proto::Quic => "quic",
            Proto::Ssh => "ssh",
            Proto::Sip => "sip",
            Proto::Rtp => "rtp",
            Proto::Rtcp => "rtcp",
            Proto::Stun => "stun",
            Proto::BitTorrent => "bittorrent",
            Proto::MySql => "mysql",
            Proto::Postgres => "postgres",
            Proto::Redis => "redis",
            Proto::MongoDb => "mongodb",
            Proto::Tds => "tds",
            Proto::WireGuard => "wireguard",
            Proto::Ftp => "ftp",
            Proto::Rtmp => "rtmp",
            Proto::Dhcp => "dhcp",
            Proto::Ssdp => "ssdp",
            Proto::NetBios => "netbios",
            Proto::Icmp => "icmp",
            Proto::Igmp => "igmp",
        }
    }

    pub fn parse(s: &str) -> Option<Proto> {
        Proto::ALL.into_iter().find(|p| p.name().eq_ignore_ascii_case(s))
    }
}

/// Per-flow extractor state.
#[derive(Clone, Copy, Debug, Default)]
pub struct State {
    /// Reassembly slot + 1 holding a partial TLS ClientHello (0: none).
    pub tls_slot: u16,
    /// Heuristic hits so far (RTP/STUN need two packets to agree).
    pub hits: u8,
    /// The candidate those hits were for.
    pub candidate: Proto,
    /// RTP: last sequence number and SSRC seen.
    pub rtp_seq: u16,
    pub rtp_ssrc: u32,
}

/// What one payload told the extractors.
#[derive(Clone, Copy, Debug, Default)]
pub struct Seen {
    pub proto: Option<Proto>,
    pub host: Option<Name>,
    /// The protocol has said all it will: decide now.
    pub complete: bool,
    /// An HTTP response carries a file download.
    pub download: bool,
    /// The protocol announces other flows (FTP data, SDP media): keep
    /// watching it after the decision.
    pub watch: bool,
}

impl Seen {
    fn done(p: Proto) -> Seen {
        Seen { proto: Some(p), complete: true, ..Seen::default() }
    }
    fn named(p: Proto, host: &[u8]) -> Seen {
        Seen { proto: Some(p), host: (!host.is_empty()).then(|| Name::new(host)), complete: true, ..Seen::default() }
    }
    fn watched(p: Proto) -> Seen {
        Seen { proto: Some(p), complete: true, watch: true, ..Seen::default() }
    }
}

/// Reassembly slots for TLS ClientHellos split over TCP segments: a fixed
/// pool per worker, reused oldest first.
pub struct Reassembly {
    bufs: Box<[[u8; tls::MAX_HELLO]]>,
    lens: Box<[u16]>,
    /// QUIC: which bytes of the crypto stream have arrived.
    have: Box<[[u64; tls::MAX_HELLO / 64]]>,
    next: usize,
    /// ClientHellos too long for a slot, or slots reused before completion.
    pub overflows: u64,
}

impl Reassembly {
    pub fn new(slots: usize) -> Reassembly {
        let slots = slots.clamp(1, u16::MAX as usize - 1);
        Reassembly {
            bufs: vec![[0; tls::MAX_HELLO]; slots].into_boxed_slice(),
            lens: vec![0; slots].into_boxed_slice(),
            have: vec![[0; tls::MAX_HELLO / 64]; slots].into_boxed_slice(),
            next: 0,
            overflows: 0,
        }
    }

    /// Takes the oldest slot for a new flow.
    fn claim(&mut self) -> usize {
        let slot = self.next;
        self.next = (self.next + 1) % self.bufs.len();
        self.lens[slot] = 0;
        self.have[slot] = [0; tls::MAX_HELLO / 64];
        slot
    }
}

/// A worker's (or an offline run's) mutable DPI state: the DNS answer
/// cache and the reassembly pool.
pub struct Local {
    pub dns: DnsCache,
    pub reasm: Reassembly,
    /// Where QUIC Initial packets are decrypted.
    scratch: Box<[u8; 65536]>,
    /// This worker's index: its pattern-matching scratch in the snapshot.
    pub worker: usize,
}

impl Local {
    pub fn new(dns_entries: usize, reasm_slots: usize) -> Local {
        Local { dns: DnsCache::new(dns_entries), reasm: Reassembly::new(reasm_slots), scratch: Box::new([0; 65536]), worker: 0 }
    }

    /// Forgets what was learnt (offline reruns; slots are reset when taken).
    pub fn clear(&mut self) {
        self.dns.clear();
        self.reasm.overflows = 0;
    }
}

/// Runs the extractors on one payload of a flow of IP protocol `proto`.
pub fn run(st: &mut State, p: &[u8], proto: u8, ports: (u16, u16), local: &mut Local, now: u64) -> Seen {
    match proto {
        6 => tcp(st, p, ports, local),
        17 => udp(st, p, ports, local, now),
        _ => Seen::default(),
    }
}

/// The protocol of a flow that is not TCP or UDP.
pub fn ip_proto(proto: u8) -> Option<Proto> {
    match proto {
        1 | 58 => Some(Proto::Icmp),
        2 => Some(Proto::Igmp),
        _ => None,
    }
}

fn tcp(st: &mut State, p: &[u8], ports: (u16, u16), local: &mut Local) -> Seen {
    // TLS, possibly split over segments.
    if st.tls_slot != 0 || tls::starts_client_hello(p) {
        return tls_segment(st, p, local);
    }
    // Any other TLS record (a ServerHello, or a flow met mid-stream).
    if p.len() >= 5 && (0x14..=0x17).contains(&p[0]) && p[1] == 3 && p[2] <= 4 && u16::from_be_bytes([p[3], p[4]]) <= 16384 + 2048 {
        return Seen::done(Proto::Tls);
    }
    // HTTP: a request names the host; unless that names an application
    // the flow waits for the response, whose Content-Type may say it is a
    // download.
    if let Some(req) = http::request(p) {
        return Seen { proto: Some(Proto::Http), host: req.host.map(Name::new), ..Seen::default() };
    }
    if let Some(resp) = http::response(p) {
        return Seen { proto: Some(Proto::Http), complete: true, download: resp.download, ..Seen::default() };
    }
    if p.starts_with(b"SSH-") && p.len() >= 8 && (p.starts_with(b"SSH-2.0-") || p.starts_with(b"SSH-1.")) {
        return Seen::done(Proto::Ssh);
    }
    if sip_start(p) {
        return Seen::watched(Proto::Sip);
    }
    if bittorrent(p) {
        return Seen::done(Proto::BitTorrent);
    }
    if let Some(x) = database(p, ports) {
        return Seen::done(x);
    }
    if ftp(p, ports) {
        return Seen::watched(Proto::Ftp);
    }
    // RTMP: the client's C0 (version 3) and 1536-byte C1, answered by the
    // server's S0 (3) and S1: two payloads, one each way, starting with 3.
    if p[0] == 3 && (p.len() == 1 || p.len() >= 512) {
        if st.candidate == Proto::Rtmp {
            return Seen::done(Proto::Rtmp);
        }
        st.candidate = Proto::Rtmp;
        return Seen::default();
    }
    if st.candidate == Proto::Rtmp {
        return Seen::default(); // the rest of C1
    }
    // RTP over TCP (RFC 4571): a 2-byte length before each packet.
    if p.len() >= 14 && (12..=1500).contains(&(u16::from_be_bytes([p[0], p[1]]) as usize)) {
        return rtp(st, &p[2..]);
    }
    Seen::default()
}

fn tls_segment(st: &mut State, p: &[u8], local: &mut Local) -> Seen {
    let r = &mut local.reasm;
    if st.tls_slot == 0 {
        match tls::client_hello(p) {
            tls::Hello::Done(h) => return Seen::named(Proto::Tls, h.sni),
            tls::Hello::Partial(need) if need <= tls::MAX_HELLO => {
                let slot = r.claim();
                r.bufs[slot][..p.len()].copy_from_slice(p);
                r.lens[slot] = p.len() as u16;
                st.tls_slot = slot as u16 + 1;
                return Seen { proto: Some(Proto::Tls), ..Seen::default() };
            }
            tls::Hello::Partial(_) => {
                r.overflows += 1;
                return Seen::done(Proto::Tls);
            }
            tls::Hello::Invalid => return Seen::done(Proto::Tls),
        }
    }
    let slot = st.tls_slot as usize - 1;
    let have = r.lens[slot] as usize;
    let take = p.len().min(tls::MAX_HELLO - have);
    r.bufs[slot][have..have + take].copy_from_slice(&p[..take]);
    r.lens[slot] = (have + take) as u16;
    match tls::client_hello(&r.bufs[slot][..have + take]) {
        tls::Hello::Done(h) => {
            st.tls_slot = 0;
            Seen::named(Proto::Tls, h.sni)
        }
        tls::Hello::Partial(need) if need <= tls::MAX_HELLO && take == p.len() => Seen { proto: Some(Proto::Tls), ..Seen::default() },
        _ => {
            st.tls_slot = 0;
            r.overflows += 1;
            Seen::done(Proto::Tls)
        }
    }
}

fn udp(st: &mut State, p: &[u8], ports: (u16, u16), local: &mut Local, now: u64) -> Seen {
    let cache = &mut local.dns;
    let port = |n: u16| ports.0 == n || ports.1 == n;
    if port(5353) && dns::message(p).is_some() {
        return Seen::done(Proto::Mdns);
    }
    if port(53) || port(5355) {
        if let Some(m) = dns::message(p) {
            if m.is_response {
                cache.learn(p, now);
            }
            // A query is decided at once; its answer is still to learn.
            let mut seen = Seen::named(Proto::Dns, m.qname.as_str().as_bytes());
            seen.watch = !m.is_response;
            return seen;
        }
    }
    if (port(67) || port(68)) && p.len() >= 240 && p[236..240] == [0x63, 0x82, 0x53, 0x63] {
        return Seen::done(Proto::Dhcp);
    }
    if port(1900) && (p.starts_with(b"M-SEARCH ") || p.starts_with(b"NOTIFY ") || p.starts_with(b"HTTP/1.1 200")) {
        return Seen::done(Proto::Ssdp);
    }
    if (port(137) || port(138)) && p.len() >= 12 {
        return Seen::done(Proto::NetBios);
    }
    if st.candidate == Proto::Quic || quic::long_header_version(p).is_some() {
        return quic_packet(st, p, local);
    }
    if sip_start(p) {
        return Seen::watched(Proto::Sip);
    }
    if wireguard(p) {
        return Seen::done(Proto::WireGuard);
    }
    if stun(p) {
        return Seen::done(Proto::Stun);
    }
    if p.starts_with(b"d1:ad2:id20:") || p.starts_with(b"d1:rd2:id20:") || p.starts_with(b"\x13BitTorrent protocol") {
        return Seen::done(Proto::BitTorrent);
    }
    // uTP: version 1, type 0..4, extension 0/1/2, 20-byte header.
    if p.len() >= 20 && p[0] & 0x0f == 1 && p[0] >> 4 <= 4 && p[1] <= 2 && (p[0] >> 4 == 4 || p.len() > 20 || p[0] >> 4 == 2) {
        if st.candidate == Proto::BitTorrent {
            return Seen::done(Proto::BitTorrent);
        }
        st.candidate = Proto::BitTorrent;
        return Seen::default();
    }
    rtp(st, p)
}

/// RTP (version 2, payload type not in RTCP's range) twice in a row with
/// the same SSRC and advancing sequence numbers; RTCP by its packet types.
fn rtp(st: &mut State, p: &[u8]) -> Seen {
    if p.len() < 12 || p[0] >> 6 != 2 {
        return Seen::default();
    }
    let pt = p[1] & 0x7f;
    if (200..=204).contains(&p[1]) {
        return Seen::done(Proto::Rtcp);
    }
    if (72..=76).contains(&pt) {
        return Seen::default();
    }
    let seq = u16::from_be_bytes([p[2], p[3]]);
    let ssrc = u32::from_be_bytes([p[8], p[9], p[10], p[11]]);
    if st.candidate == Proto::Rtp && st.rtp_ssrc == ssrc && seq.wrapping_sub(st.rtp_seq) < 64 {
        return Seen::done(Proto::Rtp);
    }
    st.candidate = Proto::Rtp;
    st.rtp_ssrc = ssrc;
    st.rtp_seq = seq;
    Seen::default()
}

/// STUN (RFC 5389): type's top bits zero, length a multiple of 4 matching
/// the payload, magic cookie; or the classic RFC 3489 form on its port.
fn stun(p: &[u8]) -> bool {
    if p.len() < 20 || p[0] & 0xc0 != 0 {
        return false;
    }
    let len = u16::from_be_bytes([p[2], p[3]]) as usize;
    len.is_multiple_of(4)
        && len + 20 == p.len()
        && (p[4..8] == [0x21, 0x12, 0xa4, 0x42] || matches!(u16::from_be_bytes([p[0], p[1]]), 0x0001 | 0x0101 | 0x0111))
}

/// WireGuard: message types 1-4 with the three reserved bytes zero and the
/// exact sizes of handshake messages, or a transport message (type 4,
/// 16-byte-aligned padded payload).
fn wireguard(p: &[u8]) -> bool {
    if p.len() < 4 || p[1..4] != [0, 0, 0] {
        return false;
    }
    match p[0] {
        1 => p.len() == 148,
        2 => p.len() == 92,
        3 => p.len() == 64,
        4 => p.len() >= 32 && (p.len() - 32).is_multiple_of(16),
        _ => false,
    }
}

/// A QUIC packet: the client's Initial packets until their ClientHello is
/// whole (the crypto stream is collected in a reassembly slot).
fn quic_packet(st: &mut State, p: &[u8], local: &mut Local) -> Seen {
    let r = &mut local.reasm;
    let slot = match st.tls_slot {
        0 => r.claim(),
        s => s as usize - 1,
    };
    let mut stream = quic::Stream { buf: &mut r.bufs[slot], have: &mut r.have[slot] };
    match quic::client_initial(p, &mut local.scratch[..], &mut stream) {
        quic::Quic::No if st.candidate != Proto::Quic => Seen::default(),

        quic::Quic::More => {
            st.candidate = Proto::Quic;
            st.tls_slot = slot as u16 + 1;
            Seen { proto: Some(Proto::Quic), ..Seen::default() }
        }
        quic::Quic::No | quic::Quic::Opaque if st.candidate == Proto::Quic => {
            // A short-header packet or the server's while we wait for the
            // rest of the hello: keep waiting.
            Seen { proto: Some(Proto::Quic), ..Seen::default() }
        }
        quic::Quic::No | quic::Quic::Opaque => Seen::done(Proto::Quic),
        quic::Quic::Named(sni) => {
            st.tls_slot = 0;
            st.candidate = Proto::Unknown;
            Seen::named(Proto::Quic, sni)
        }
    }
}

fn sip_start(p: &[u8]) -> bool {
    const METHODS: [&[u8]; 8] = [b"INVITE ", b"REGISTER ", b"OPTIONS ", b"ACK ", b"BYE ", b"CANCEL ", b"SUBSCRIBE ", b"NOTIFY "];
    (METHODS.iter().any(|m| p.starts_with(m)) && find(p, b" SIP/2.0\r\n").is_some_and(|i| i < 256)) || p.starts_with(b"SIP/2.0 ")
}

fn bittorrent(p: &[u8]) -> bool {
    p.starts_with(b"\x13BitTorrent protocol") || (p.starts_with(b"GET /announce?") && find(p, b"info_hash=").is_some())
}

fn ftp(p: &[u8], ports: (u16, u16)) -> bool {
    (ports.0 == 21 || ports.1 == 21) && (p.starts_with(b"220 ") || p.starts_with(b"220-") || p.starts_with(b"USER "))
}

/// Database handshakes: MySQL/MariaDB server greeting, PostgreSQL startup
/// or SSL request, Redis RESP commands, MongoDB OP_MSG/OP_QUERY headers,
/// TDS pre-login.
fn database(p: &[u8], ports: (u16, u16)) -> Option<Proto> {
    let n = p.len();
    // MySQL greeting: 3-byte length, sequence 0, protocol 10, a version string.
    if n > 5 && u32::from_le_bytes([p[0], p[1], p[2], 0]) as usize == n - 4 && p[3] == 0 && p[4] == 10 && p[5].is_ascii_digit() {
        return Some(Proto::MySql);
    }
    // PostgreSQL: length then protocol 3.0 or the SSLRequest/GSSENC codes.
    if n >= 8 && u32::from_be_bytes([p[0], p[1], p[2], p[3]]) as usize == n {
        let code = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
        if code == 0x0003_0000 || code == 80877103 || code == 80877104 {
            return Some(Proto::Postgres);
        }
    }
    // Redis RESP: an array of bulk strings.
    if n >= 8 && p[0] == b'*' && p[1].is_ascii_digit() && find(&p[..n.min(16)], b"\r\n$").is_some() {
        return Some(Proto::Redis);
    }
    // MongoDB: message length, request id, response-to 0, opcode OP_MSG (2013) or OP_QUERY (2004).
    if n >= 16 && u32::from_le_bytes([p[0], p[1], p[2], p[3]]) as usize == n {
        let op = u32::from_le_bytes([p[12], p[13], p[14], p[15]]);
        if (op == 2013 || op == 2004) && (ports.0 == 27017 || ports.1 == 27017 || p[8..12] == [0, 0, 0, 0]) {
            return Some(Proto::MongoDb);
        }
    }
    // TDS pre-login: type 0x12, status 1, length matching.
    if n >= 8 && p[0] == 0x12 && p[1] == 1 && u16::from_be_bytes([p[2], p[3]]) as usize == n {
        return Some(Proto::Tds);
    }
    None
}

/// A flow another flow announced: RTP/RTCP media from SDP, FTP data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Announced {
    pub addr: std::net::IpAddr,
    pub port: u16,
    pub proto: Proto,
}

/// What one payload of a watched flow announces (up to four flows).
pub fn announcements(proto: Proto, p: &[u8], sender: std::net::IpAddr) -> [Option<Announced>; 4] {
    let mut out = [None; 4];
    match proto {
        Proto::Ftp => {
            if let Some((addr, port)) = ftp_data(p, sender) {
                out[0] = Some(Announced { addr, port, proto: Proto::Ftp });
            }
        }
        Proto::Sip => {
            let body = find(p, b"\r\n\r\n").map_or(&[][..], |i| &p[i + 4..]);
            for (i, (addr, port)) in sdp_media(body).into_iter().flatten().enumerate().take(2) {
                out[2 * i] = Some(Announced { addr, port, proto: Proto::Rtp });
                out[2 * i + 1] = port.checked_add(1).map(|p| Announced { addr, port: p, proto: Proto::Rtcp });
            }
        }
        _ => {}
    }
    out
}

/// FTP: the data connection a control message announces (RFC 959 PASV
/// reply and PORT, RFC 2428 EPSV reply and EPRT).
fn ftp_data(p: &[u8], sender: std::net::IpAddr) -> Option<(std::net::IpAddr, u16)> {
    let line = &p[..find(p, b"\r\n").unwrap_or(p.len())];
    let six = |s: &[u8]| -> Option<(std::net::IpAddr, u16)> {
        let s = std::str::from_utf8(s).ok()?;
        let mut n = [0u8; 6];
        let mut it = s.split(',');
        for x in &mut n {
            *x = it.next()?.trim().parse().ok()?;
        }
        Some((std::net::IpAddr::from([n[0], n[1], n[2], n[3]]), u16::from_be_bytes([n[4], n[5]])))
    };
    if line.starts_with(b"227 ") {
        let open = line.iter().position(|&c| c == b'(')?;
        let close = line.iter().rposition(|&c| c == b')')?;
        return six(line.get(open + 1..close)?);
    }
    if line.starts_with(b"PORT ") {
        return six(&line[5..]);
    }
    if line.starts_with(b"229 ") {
        // (|||port|): the port on the replying server.
        let open = line.iter().position(|&c| c == b'(')?;
        let port = std::str::from_utf8(line[open + 1..].split(|&c| c == b'|').nth(3)?).ok()?.parse().ok()?;
        return Some((sender, port));
    }
    if line.starts_with(b"EPRT ") {
        // |1|addr|port|
        let mut f = line[5..].split(|&c| c == b'|').skip(2);
        let addr = std::str::from_utf8(f.next()?).ok()?.parse().ok()?;
        let port = std::str::from_utf8(f.next()?).ok()?.parse().ok()?;
        return Some((addr, port));
    }
    None
}

/// SDP (RFC 8866): each media line's port with its connection address
/// (the media-level `c=` if any, else the session's).
pub fn sdp_media(body: &[u8]) -> [Option<(std::net::IpAddr, u16)>; 2] {
    let mut session: Option<std::net::IpAddr> = None;
    let mut media: [Option<(Option<std::net::IpAddr>, u16)>; 2] = [None; 2];
    let mut n = 0usize;
    for line in body.split(|&c| c == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(c) = line.strip_prefix(b"c=IN IP4 ").or_else(|| line.strip_prefix(b"c=IN IP6 ")) {
            let text = std::str::from_utf8(c).ok().map(|t| t.split('/').next().unwrap_or(t).trim());
            let addr = text.and_then(|t| t.parse().ok());
            match n {
                0 => session = addr,
                _ => {
                    if let Some(m) = &mut media[n - 1] {
                        m.0 = addr;
                    }
                }
            }
        } else if let Some(m) = line.strip_prefix(b"m=") {
            let mut f = m.split(|&c| c == b' ');
            let (_kind, port) = (f.next(), f.next());
            let port = port.and_then(|p| std::str::from_utf8(p).ok()).and_then(|p| p.split('/').next()?.parse::<u16>().ok());
            if let (Some(port), true) = (port, n < 2) {
                media[n] = Some((None, port));
                n += 1;
            } else if n >= 2 {
                break;
            }
        }
    }
    let mut out = [None; 2];
    for (o, m) in out.iter_mut().zip(media) {
        if let Some((addr, port)) = m {
            if let Some(a) = addr.or(session) {
                if port != 0 {
                    *o = Some((a, port));
                }
            }
        }
    }
    out
}

pub(crate) fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    memchr::memmem::find(h, n)
}
