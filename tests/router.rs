//! End-to-end routing in network namespaces: host A -- appliance -- host B,
//! the appliance on `net_af_packet` over veth pairs. Needs root; skips with
//! the reason otherwise.

mod common;

use common::*;
use dataplane::wire::{arp, icmpv4, icmpv6, ip_proto, ipv4, ipv6, EtherType, EthernetAddress, Ipv4Address, Ipv6Address};

fn mac_of(ns: &str, dev: &str) -> String {
    let out = sh(&format!("ip netns exec {ns} cat /sys/class/net/{dev}/address"));
    out.trim().to_owned()
}

#[test]
fn hosts_reach_each_other_and_the_appliance_answers() {
    let name = "router::hosts_reach_each_other_and_the_appliance_answers";
    if let Some(why) = netns_unavailable() {
        return skip(name, &why);
    }
    let lab = Lab::new("pr");
    let dir = Scratch::new("router-ping");
    let cfg = dir.write("c.toml", &lab.config(&prefix("rping")));
    let app = lab.start(&cfg);
    let lan_mac = mac_of(&lab.r, &lab.a1);

    // A pings B through the appliance (one hop: TTL 63), both families.
    for (cmd, what) in [("ping -c 3 -i 0.2 -W 2 10.2.0.2", "IPv4"), ("ping -6 -c 3 -i 0.2 -W 2 fd02::2", "IPv6")] {
        let (ok, out) = lab.in_a(cmd);
        assert!(ok && out.contains(" 0% packet loss") && out.contains("ttl=63"), "{what} A->B:\n{out}");
    }
    let (ok, out) = lab.in_b("ping -c 2 -i 0.2 -W 2 10.1.0.2");
    assert!(ok && out.contains("ttl=63"), "B->A:\n{out}");

    // The appliance answers ping on its own addresses (TTL 64: not forwarded).
    let ll = Ipv6Address::link_local_from_mac(EthernetAddress::from_bytes(&parse_mac(&lan_mac)));
    for target in ["10.1.0.1".to_string(), "fd01::1".into(), format!("{ll}%{}", lab.a0)] {
        let (ok, out) = lab.in_a(&format!("ping -c 2 -i 0.2 -W 2 {target}"));
        assert!(ok && out.contains("ttl=64"), "ping {target}:\n{out}");
    }
    // ... having answered ARP and ND: A's neighbour table holds its MAC.
    for addr in ["10.1.0.1", "fd01::1"] {
        let (_, out) = lab.in_a(&format!("ip neigh show {addr} dev {}", lab.a0));
        assert!(out.contains(&format!("lladdr {lan_mac}")), "neighbour {addr}: {out}");
    }

    // A 64-byte packet with TTL 1 gets time exceeded from the appliance.
    let (_, out) = lab.in_a("ping -c 1 -t 1 -s 36 -W 2 10.2.0.2");
    assert!(out.contains("64(92) bytes") || out.contains("36(64) bytes"), "{out}");
    assert!(out.contains("From 10.1.0.1 icmp_seq=1 Time to live exceeded"), "{out}");
    let (_, out) = lab.in_a("ping -6 -c 1 -t 1 -s 16 -W 2 fd02::2");
    assert!(out.contains("From fd01::1 icmp_seq=1 Time exceeded: Hop limit"), "{out}");

    // A live reload that changes the routes keeps what the appliance learnt:
    // the neighbour entries survive it and traffic to them still flows,
    // while the new route takes effect.
    let socket = socket_path(&prefix("rping"));
    let cli = |args: &[&str]| {
        let out = run_with_timeout(patronus().args(args).arg("--socket").arg(&socket), std::time::Duration::from_secs(30));
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    };
    let neighbours = || {
        let (status, out, err) = cli(&["show", "neighbors", "--json"]);
        assert_eq!(status, Some(0), "show neighbors: {err}");
        let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
        let mut rows: Vec<(String, String, String)> = v["neighbors"]
            .as_array()
            .expect("rows")
            .iter()
            .filter(|r| r["state"] == "reachable" || r["state"] == "probe")
            .map(|r| (r["iface"].to_string(), r["ip"].to_string(), r["mac"].to_string()))
            .collect();
        rows.sort();
        rows
    };
    let before = neighbours();
    assert!(before.iter().any(|r| r.1.contains("10.2.0.2")), "B learnt before reload: {before:?}");
    let mut changed = std::fs::read_to_string(&cfg).unwrap();
    changed.push_str("\n[[route]]\nprefix = \"10.9.0.0/16\"\nblackhole = true\n");
    std::fs::write(&cfg, changed).unwrap();
    let (status, out, err) = cli(&["reload"]);
    assert_eq!(status, Some(0), "reload: {out}{err}");
    let after = neighbours();
    for row in &before {
        assert!(after.contains(row), "neighbour {row:?} lost across reload: {after:?}");
    }
    let (ok, out) = lab.in_a("ping -c 2 -i 0.2 -W 2 10.2.0.2");
    assert!(ok && out.contains("ttl=63"), "A->B after reload:\n{out}");
    let (ok, out) = lab.in_a("ping -c 1 -W 1 10.9.1.1");
    assert!(!ok && !out.contains("ttl="), "blackholed after reload:\n{out}");

    let out = stop(app);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "exit {}\n{stdout}\n{}", code(out.status), text(&out.stderr));
    assert_eq!(drops_by_reason(&stdout).get("ttl_expired"), Some(&2), "{stdout}");
    assert_eq!(drops_by_reason(&stdout).get("blackhole"), Some(&1), "{stdout}");
    assert_eq!(report_row(&stdout, "lan0")[8], 2, "two ICMP errors sent: {stdout}");
    assert!(stdout.contains("lan0 10.1.0.2 ") && stdout.contains("wan0 fd02::2 "), "neighbours learned:\n{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("mempool ") && l.contains(": all ")), "{stdout}");
}

fn parse_mac(s: &str) -> Vec<u8> {
    s.split(':').map(|b| u8::from_str_radix(b, 16).unwrap()).collect()
}

#[test]
fn tcp_crosses_the_appliance_both_ways() {
    let name = "router::tcp_crosses_the_appliance_both_ways";
    if let Some(why) = netns_unavailable() {
        return skip(name, &why);
    }
    for tool in ["iperf3", "curl", "busybox"] {
        if !try_sh(&format!("command -v {tool}")).0 {
            return skip(name, &format!("`{tool}` is not installed (scripts/setup.sh installs it)"));
        }
    }
    let lab = Lab::new("pt");
    let dir = Scratch::new("router-tcp");
    let cfg = dir.write("c.toml", &lab.config(&prefix("rtcp")));
    let app = lab.start(&cfg);

    // iperf3: A sends to B, then B sends to A (-R), over IPv4 and IPv6.
    for (i, (server, dir_flag)) in [("10.2.0.2", ""), ("10.2.0.2", "-R"), ("fd02::2", ""), ("fd02::2", "-R")].iter().enumerate() {
        let port = 5301 + i;
        sh(&format!("ip netns exec {} iperf3 -s -1 -D -p {port}", lab.b));
        std::thread::sleep(std::time::Duration::from_millis(300));
        let (ok, out) = lab.in_a(&format!("iperf3 -c {server} -p {port} -t 2 {dir_flag} -J"));
        assert!(ok, "iperf3 {server} {dir_flag}:\n{out}");
        let bytes: f64 = out
            .split("\"sum_received\"")
            .nth(1)
            .and_then(|s| s.split("\"bytes\":").nth(1))
            .and_then(|s| s.split([',', '}']).next())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0.0);
        assert!(bytes > 1e6, "iperf3 {server} {dir_flag} moved only {bytes} bytes:\n{out}");
    }

    // curl against a small HTTP server on B, both families.
    let www = dir.path("www");
    std::fs::create_dir_all(&www).unwrap();
    let body: String = (0..20_000).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    std::fs::write(www.join("index.html"), &body).unwrap();
    sh(&format!("ip netns exec {} busybox httpd -p 8080 -h {}", lab.b, www.display()));
    std::thread::sleep(std::time::Duration::from_millis(300));
    for url in ["http://10.2.0.2:8080/index.html", "http://[fd02::2]:8080/index.html"] {
        let (ok, out) = lab.in_a(&format!("curl -sS -m 10 {url}"));
        assert!(ok && out == body, "curl {url}: {} bytes, {}", out.len(), &out[..out.len().min(200)]);
    }
    // And a connection opened from B's side toward A.
    sh(&format!("ip netns exec {} busybox httpd -p 8081 -h {}", lab.a, www.display()));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (ok, out) = lab.in_b("curl -sS -m 10 http://10.1.0.2:8081/index.html");
    assert!(ok && out == body, "curl B->A: {} bytes", out.len());

    let out = stop(app);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "exit {}\n{stdout}\n{}", code(out.status), text(&out.stderr));
    let lan = report_row(&stdout, "lan0");
    assert!(lan[0] > 1000 && lan[2] > 1000, "traffic both ways: {lan:?}");
}

/// Frames that must each be dropped for a known reason, built against the
/// appliance's MAC. No IP fragments: `net_af_packet` with `qpairs` > 1 joins
/// a fanout group with PACKET_FANOUT_FLAG_DEFRAG, so the kernel reassembles
/// fragments before the appliance sees them (fragment handling is covered
/// by the router's unit tests). No runt frames either: veth pads frames to
/// 60 bytes, so truncated Ethernet/VLAN headers cannot reach the appliance
/// this way (covered by the unit tests too).
fn malformed_frames(app: EthernetAddress, host: EthernetAddress) -> Vec<(&'static str, Vec<u8>)> {
    let eth = |dst: EthernetAddress, et: u16, rest: &[u8]| {
        let mut f = Vec::new();
        f.extend(dst.0);
        f.extend(host.0);
        f.extend(et.to_be_bytes());
        f.extend(rest);
        f
    };
    let v4 = |src: [u8; 4], dst: [u8; 4], ttl: u8, proto: u8, payload: &[u8], mf: bool| {
        let r = ipv4::Repr {
            src: Ipv4Address(src),
            dst: Ipv4Address(dst),
            protocol: proto,
            ttl,
            dscp: 0,
            ecn: 0,
            ident: 99,
            dont_frag: false,
            more_frags: mf,
            frag_offset: 0,
            options: ipv4::Options::NONE,
            payload_len: payload.len(),
        };
        let mut b = vec![0u8; r.buffer_len()];
        b[20..].copy_from_slice(payload);
        r.emit(&mut ipv4::Packet::new_unchecked(&mut b[..]));
        b
    };
    let v6 = |src: &str, dst: &str, hop: u8, nh: u8, payload: &[u8]| {
        let r = ipv6::Repr {
            src: src.parse::<std::net::Ipv6Addr>().unwrap().into(),
            dst: dst.parse::<std::net::Ipv6Addr>().unwrap().into(),
            next_header: nh,
            hop_limit: hop,
            traffic_class: 0,
            flow_label: 0,
            payload_len: payload.len(),
        };
        let mut b = vec![0u8; r.buffer_len()];
        b[40..].copy_from_slice(payload);
        r.emit(&mut ipv6::Packet::new_unchecked(&mut b[..]));
        b
    };
    let (a, b_host, appl) = ([10, 1, 0, 2], [10, 2, 0, 2], [10, 1, 0, 1]);
    let udp = [0x13, 0x88, 0x17, 0x70, 0, 12, 0, 0, 1, 2, 3, 4];
    let mut bad_csum = v4(a, b_host, 64, ip_proto::UDP, &udp, false);
    bad_csum[10] ^= 0x5a;
    let mut lying = v4(a, b_host, 64, ip_proto::UDP, &udp, false);
    lying[2..4].copy_from_slice(&9000u16.to_be_bytes());
    ipv4::Packet::new_unchecked(&mut lying[..]).fill_checksum();
    let ping_bad = {
        let r = icmpv4::Repr::EchoRequest { ident: 1, seq_no: 1, data: b"flood" };
        let mut p = vec![0u8; r.buffer_len()];
        r.emit(&mut icmpv4::Packet::new_unchecked(&mut p[..]));
        p[2] ^= 0xff;
        v4(a, appl, 64, ip_proto::ICMP, &p, false)
    };
    let chain: Vec<u8> =
        (0..10).flat_map(|i| [if i < 9 { ip_proto::IPV6_DEST_OPTS } else { ip_proto::UDP }, 0, 1, 4, 0, 0, 0, 0]).collect();
    let mut lying6 = v6("fd01::2", "fd02::2", 64, ip_proto::UDP, &udp);
    lying6[4..6].copy_from_slice(&1400u16.to_be_bytes());
    let mut bad_arp = [0u8; 28];
    arp::Repr {
        operation: arp::Operation::Request,
        source_hardware_addr: host,
        source_protocol_addr: Ipv4Address(a),
        target_hardware_addr: EthernetAddress::default(),
        target_protocol_addr: Ipv4Address(appl),
    }
    .emit(&mut arp::Packet::new_unchecked(&mut bad_arp[..]));
    bad_arp[1] = 6; // IEEE 802 hardware: not Ethernet
    let ns = {
        let r =
            icmpv6::Repr::NeighborSolicit { target: "fd01::1".parse::<std::net::Ipv6Addr>().unwrap().into(), source_lladdr: Some(host) };
        let mut p = vec![0u8; r.buffer_len()];
        let (s, d) = ("fd01::2".parse::<std::net::Ipv6Addr>().unwrap().into(), "fd01::1".parse::<std::net::Ipv6Addr>().unwrap().into());
        r.emit(s, d, &mut icmpv6::Packet::new_unchecked(&mut p[..]));
        v6("fd01::2", "fd01::1", 64, ip_proto::ICMPV6, &p) // hop limit 64: invalid ND
    };
    let mut vlan_ip = vec![0x03, 0xe7]; // VID 999
    vlan_ip.extend(0x0800u16.to_be_bytes());
    vlan_ip.extend(v4(a, b_host, 64, ip_proto::UDP, &udp, false));
    let other = EthernetAddress([2, 0xde, 0xad, 0xbe, 0xef, 1]);

    let mut frames: Vec<(&'static str, Vec<u8>)> = vec![
        ("unknown_vlan", eth(app, 0x8100, &vlan_ip)),
        ("not_our_mac", eth(other, 0x0800, &v4(a, b_host, 64, ip_proto::UDP, &udp, false))),
        ("unsupported_ethertype", eth(app, 0x88cc, &[0u8; 46])),
        ("malformed_ipv4", eth(app, 0x0800, &[0x45, 0, 0, 40, 0, 0])),
        ("malformed_ipv4", eth(app, 0x0800, &lying)),
        ("bad_ipv4_checksum", eth(app, 0x0800, &bad_csum)),
        ("martian", eth(app, 0x0800, &v4([127, 0, 0, 1], b_host, 64, ip_proto::UDP, &udp, false))),
        ("local_unsupported", eth(app, 0x0800, &v4(a, appl, 64, ip_proto::UDP, &udp, false))),
        ("bad_icmp_checksum", eth(app, 0x0800, &ping_bad)),
        ("malformed_ipv6", eth(app, 0x86dd, &v6("fd01::2", "fd02::2", 64, ip_proto::IPV6_DEST_OPTS, &chain))),
        ("malformed_ipv6", eth(app, 0x86dd, &lying6)),
        ("malformed_ipv6", eth(app, 0x86dd, &[0x60, 0, 0, 0])),
        ("malformed_arp", eth(EthernetAddress::BROADCAST, EtherType::ARP.0, &bad_arp)),
        ("malformed_nd", eth(app, 0x86dd, &ns)),
    ];
    // Well-formed IP carrying malformed application payloads for DPI: they
    // are forwarded (not drops); the appliance must neither panic nor stall.
    let l4 = |proto: u8, sport: u16, dport: u16, payload: &[u8]| -> Vec<u8> {
        let mut h = Vec::new();
        h.extend(sport.to_be_bytes());
        h.extend(dport.to_be_bytes());
        if proto == ip_proto::UDP {
            h.extend(((8 + payload.len()) as u16).to_be_bytes());
            h.extend([0, 0]);
        } else {
            h.extend([0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
        }
        h.extend(payload);
        v4(a, b_host, 64, proto, &h, false)
    };
    let mut dpi_payloads: Vec<(u8, u16, Vec<u8>)> = vec![
        // TLS: a record longer than the segment (starts reassembly), lying
        // handshake and extension lengths, an SNI list running off the end.
        (ip_proto::TCP, 443, vec![0x16, 3, 1, 0x3f, 0xff, 1, 0, 0x3f, 0xfb, 3, 3]),
        (
            ip_proto::TCP,
            443,
            [&[0x16u8, 3, 1, 0, 60, 1, 0xff, 0xff, 0xff, 3, 3][..], &[0u8; 32], &[0, 0, 2, 0, 0x2f, 1, 0, 0xff, 0xff, 0, 0, 0xff, 0xf0]]
                .concat(),
        ),
        (
            ip_proto::TCP,
            443,
            [
                &[0x16u8, 3, 1, 0, 80, 1, 0, 0, 76, 3, 3][..],
                &[0u8; 32],
                &[0, 0, 2, 0, 0x2f, 1, 0, 0, 30, 0, 0, 0, 26, 0, 24, 0, 0xff, 0xff],
            ]
            .concat(),
        ),
        // QUIC: v1 Initial with a 255-byte DCID, a huge token length, a
        // length past the datagram; gQUIC with an absurd CHLO tag count.
        (ip_proto::UDP, 443, [&[0xc3u8, 0, 0, 0, 1, 255][..], &[7u8; 1194]].concat()),
        (
            ip_proto::UDP,
            443,
            [&[0xc3u8, 0, 0, 0, 1, 8][..], &[1u8; 8], &[0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], &[0u8; 1100]].concat(),
        ),
        (ip_proto::UDP, 443, [&[0xc3u8, 0, 0, 0, 1, 8][..], &[1u8; 8], &[0, 0, 0x7f, 0xff], &[0u8; 1150]].concat()),
        (ip_proto::UDP, 443, [&[0x0du8][..], &[9u8; 8], b"Q043", &[1], b"CHLO", &[0xff, 0xff, 0, 0], &[0u8; 64]].concat()),
        (ip_proto::UDP, 443, [&[0xc3u8][..], b"Q050", &[8], &[2u8; 8], &[0, 0, 0x40, 0x10], &[0u8; 40]].concat()),
        // DNS: a compression pointer loop, counts far past the message, an
        // answer whose length runs off the end (as a response, so it is learnt).
        (ip_proto::UDP, 53, vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1]),
        (ip_proto::UDP, 53, vec![0x12, 0x34, 0x81, 0x80, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1, b'a', 0, 0, 1, 0, 1]),
        (
            ip_proto::UDP,
            53,
            vec![
                0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, 1, b'a', 0, 0, 1, 0, 1, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0xff, 0xff, 1, 2,
            ],
        ),
        // SIP: an INVITE whose SDP has a bad address, a port past 65535 and
        // no line ends; a status line followed by binary.
        (
            ip_proto::UDP,
            5060,
            b"INVITE sip:x SIP/2.0\r\n\r\nv=0\r\nc=IN IP4 999.1.1.1\r\nm=audio 99999 RTP/AVP 0\r\nm=audio 65535 RTP/AVP\nc=IN IP6 ::::"
                .to_vec(),
        ),
        (ip_proto::UDP, 5060, [&b"SIP/2.0 200 OK\r\n\r\n"[..], &[0xffu8; 200]].concat()),
        // FTP: a passive-mode reply with numbers out of range.
        (ip_proto::TCP, 21, b"227 Entering Passive Mode (999,1,1,1,300,300)\r\n".to_vec()),
    ];
    // Truncations of each, too.
    for i in 0..dpi_payloads.len() {
        let (p, port, body) = dpi_payloads[i].clone();
        for cut in [1, body.len() / 2, body.len().saturating_sub(1)] {
            dpi_payloads.push((p, port, body[..cut.min(body.len())].to_vec()));
        }
    }
    for (i, (proto, port, body)) in dpi_payloads.iter().enumerate() {
        // A fresh client port per frame and round robin: each is a new flow's first payload.
        frames.push(("dpi", eth(app, 0x0800, &l4(*proto, 20000 + i as u16, *port, body))));
    }
    // Random bytes after a valid Ethernet header, of every EtherType we parse.
    let mut seed = 0x1234_5678_9abc_def1u64;
    for i in 0..300 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = 1 + (seed % 300) as usize;
        let body: Vec<u8> = (0..len).map(|j| (seed >> (j % 56)) as u8 ^ j as u8).collect();
        let et = [0x0800, 0x86dd, 0x0806, 0x8100, 0x88a8][i % 5];
        frames.push(("random", eth(app, et, &body)));
    }
    frames
}

#[test]
fn malformed_flood_is_counted_and_good_traffic_keeps_flowing() {
    let name = "router::malformed_flood_is_counted_and_good_traffic_keeps_flowing";
    if let Some(why) = netns_unavailable() {
        return skip(name, &why);
    }
    let lab = Lab::new("pm");
    let dir = Scratch::new("router-flood");
    let cfg = dir.write("c.toml", &lab.config(&prefix("rflood")));
    let app = lab.start(&cfg);
    let socket = socket_path(&prefix("rflood"));
    let app_mac = EthernetAddress::from_bytes(&parse_mac(&mac_of(&lab.r, &lab.a1)));
    let host_mac = EthernetAddress::from_bytes(&parse_mac(&mac_of(&lab.a, &lab.a0)));

    // Warm up neighbours, then ping through the flood.
    assert!(lab.in_a("ping -c 1 -W 2 10.2.0.2").0);
    let (a, a0) = (lab.a.clone(), lab.a0.clone());
    let frames = malformed_frames(app_mac, host_mac);
    let kinds: Vec<&str> = frames.iter().map(|f| f.0).collect();
    let pinger = {
        let a = lab.a.clone();
        std::thread::spawn(move || try_sh(&format!("ip netns exec {a} ping -c 40 -i 0.05 -W 2 10.2.0.2")))
    };
    let mut accepted = 0;
    for round in 0..20 {
        let batch: Vec<Vec<u8>> = frames.iter().map(|f| f.1.clone()).collect();
        accepted += inject(&a, &a0, batch);
        std::thread::sleep(std::time::Duration::from_millis(50 + round));
    }
    let (_, ping) = pinger.join().unwrap();
    assert!(accepted > frames.len() * 15, "the kernel took {accepted} frames");
    let received: u32 = ping.split(" received").next().and_then(|s| s.rsplit(' ').next()).and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(received >= 38, "good traffic kept flowing through the flood ({received}/40):\n{ping}");
    // Still answering afterwards.
    assert!(lab.in_a("ping -c 2 -i 0.2 -W 2 10.1.0.1").0, "appliance alive");
    // DPI saw the malformed payloads (each round's are new flows' first packets).
    let dpi_frames = kinds.iter().filter(|k| **k == "dpi").count();
    let show = run_with_timeout(patronus().args(["show", "flows", "--json", "--socket"]).arg(&socket), std::time::Duration::from_secs(30));
    let v: serde_json::Value = serde_json::from_str(&text(&show.stdout)).expect("show flows JSON");
    let inspected = v["flows"]["inspected_packets"].as_u64().unwrap_or(0);
    assert!(inspected as usize >= dpi_frames, "DPI inspected {inspected} packets, fewer than the {dpi_frames} malformed payloads");

    let out = stop(app);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "exit {} (a panic aborts)\n{stdout}\n{stderr}", code(out.status));
    assert!(!stderr.contains("panicked"), "{stderr}");
    let drops = drops_by_reason(&stdout);
    for reason in kinds.iter().filter(|k| **k != "random" && **k != "dpi") {
        assert!(drops.get(*reason).copied().unwrap_or(0) >= 20, "no {reason} drops counted:\n{stdout}");
    }
    assert!(stdout.lines().any(|l| l.starts_with("mempool ") && l.contains(": all ")), "{stdout}");
}

/// Frames the kernel drops in the af_packet ring, before DPDK sees them,
/// are the port's missed packets: a burst into a small ring loses some,
/// and every frame the veth delivered is either received or missed.
#[test]
fn af_packet_ring_drops_are_counted_as_missed() {
    let name = "router::af_packet_ring_drops_are_counted_as_missed";
    if let Some(why) = netns_unavailable() {
        return skip(name, &why);
    }
    let lab = Lab::new("pk");
    let dir = Scratch::new("router-ring");
    let pfx = prefix("ring");
    // A 32-frame ring on the LAN side.
    let cfg = lab.config(&pfx).replacen(&format!("iface={},", lab.a1), &format!("iface={},framecnt=32,", lab.a1), 1);
    let cfg = dir.write("c.toml", &cfg);
    let app = lab.start(&cfg);
    let rx_of_veth =
        || sh(&format!("ip netns exec {} cat /sys/class/net/{}/statistics/rx_packets", lab.r, lab.a1)).trim().parse::<u64>().unwrap();
    let ports = || {
        let out = run_with_timeout(
            patronus().args(["show", "ports", "--json", "--socket"]).arg(socket_path(&pfx)),
            std::time::Duration::from_secs(30),
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        let lan = &v["ports"][0];
        (lan["rx_packets"].as_u64().unwrap(), lan["nic_missed"].as_u64().unwrap())
    };
    let (rx0, missed0) = ports();
    let veth0 = rx_of_veth();
    // 60-byte frames to a MAC that is not the appliance's: received, then dropped as not ours.
    let mut frame = vec![0u8; 60];
    frame[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x99]);
    frame[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x98]);
    frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let sent = inject(&lab.a, &lab.a0, vec![frame; 200_000]);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let (rx1, missed1) = ports();
    let delivered = rx_of_veth() - veth0;
    let (rx, missed) = (rx1 - rx0, missed1 - missed0);
    let out = stop(app);
    println!("sent {sent}, the veth delivered {delivered}; the appliance received {rx} and missed {missed}");
    assert!(missed > 0, "a 32-frame ring overflows under a 200,000-frame burst: missed {missed}\n{}", text(&out.stderr));
    // Each delivered frame is received or missed (a few others, e.g. the kernel's own, may join in).
    assert!(rx + missed >= delivered && rx + missed <= delivered + 50, "received {rx} + missed {missed} vs delivered {delivered}");
}
