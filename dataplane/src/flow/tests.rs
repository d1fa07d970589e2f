use super::*;

fn v4(last: u8) -> [u8; 16] {
    crate::vocab::mapped_v4([10, 0, 0, last])
}

fn frame_v4_tcp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14];
    f[12] = 0x08;
    let total = 20 + 20 + payload.len();
    let mut ip = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0x40, 0, 64, 6, 0, 0];
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let mut tcp = vec![0u8; 20];
    tcp[..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&dport.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = flags;
    f.extend(ip);
    f.extend(tcp);
    f.extend_from_slice(payload);
    f.extend_from_slice(&[0; 6]); // Ethernet padding: not payload
    f
}

#[test]
fn both_directions_share_one_key_and_the_payload_excludes_padding() {
    let a = frame_v4_tcp([10, 0, 0, 1], [10, 0, 0, 2], 40000, 443, key::TCP_SYN, b"");
    let b = frame_v4_tcp([10, 0, 0, 2], [10, 0, 0, 1], 443, 40000, 0x12, b"hello");
    let pa = parse_frame(&a).unwrap();
    let pb = parse_frame(&b).unwrap();
    assert_eq!(pa.key, pb.key);
    assert_ne!(pa.dir, pb.dir);
    assert_eq!(pa.key.hash(), pb.key.hash());
    assert_eq!(pb.payload.1, 5);
    assert_eq!(&b[pb.payload.0..pb.payload.0 + 5], b"hello");
    assert_eq!(pa.payload.1, 0, "padding is not payload");
}

#[test]
fn vlan_raw_ip_and_truncated_frames() {
    let plain = frame_v4_tcp([10, 0, 0, 1], [10, 0, 0, 2], 1, 2, 0, b"x");
    let mut tagged = plain[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x05, 0x81, 0x00, 0x00, 0x06]);
    tagged.extend_from_slice(&plain[12..]);
    let (p, t) = (parse_frame(&plain).unwrap(), parse_frame(&tagged).unwrap());
    assert_eq!(p.key, t.key);
    assert_eq!(parse_at(&plain[14..], crate::wire::frame::Ip::V4(0)).unwrap().key, p.key);
    for cut in 0..plain.len() - 7 {
        // Every truncation either parses consistently or is refused; none panics.
        if let Some(q) = parse_frame(&plain[..cut]) {
            assert!(q.payload.0 + q.payload.1 <= cut);
        }
    }
}

#[test]
fn full_buckets_evict_the_oldest_and_count_it() {
    let mut t = FlowTable::new(8, Timeouts::with_hz(1));
    assert_eq!(t.capacity(), 8); // one bucket
    for i in 0..9u8 {
        let (k, d) = FlowKey::new(v4(1), 1000 + i as u16, v4(2), 80, 6);
        t.lookup_or_insert(&k, d, i as u64);
    }
    assert_eq!(t.stats.evicted, 1);
    assert_eq!(t.stats.active, 8);
    let (k0, _) = FlowKey::new(v4(1), 1000, v4(2), 80, 6);
    assert!(t.iter().all(|f| f.key != k0), "the oldest flow went");
}

#[test]
fn idle_flows_expire_per_protocol_and_rst_ends_a_flow() {
    let to = Timeouts { tcp: 100, tcp_closing: 10, tcp_ended: 1, udp: 50, other: 5 };
    let mut t = FlowTable::new(64, to);
    let (tcp, d) = FlowKey::new(v4(1), 1, v4(2), 2, 6);
    let (udp, du) = FlowKey::new(v4(1), 1, v4(2), 2, 17);
    t.lookup_or_insert(&tcp, d, 0);
    t.lookup_or_insert(&udp, du, 0);
    t.sweep(60, 1 << 20);
    assert_eq!((t.stats.expired, t.stats.active), (1, 1), "UDP idle 60 > 50 expired, TCP kept");
    let (f, dir) = t.lookup_or_insert(&tcp, d, 61);
    account(f, dir, 40, &L4Info::Tcp { flags: key::TCP_RST, seq: 0 }, 61);
    t.sweep(63, 1 << 20);
    assert_eq!((t.stats.closed, t.stats.active), (1, 0));
}

#[test]
fn direction_is_relative_to_the_first_packet() {
    let mut t = FlowTable::new(64, Timeouts::with_hz(1));
    let (k, d_hi) = FlowKey::new(v4(9), 5, v4(1), 7, 17);
    assert_eq!(d_hi, Dir::Hi);
    let (_, d) = t.lookup_or_insert(&k, d_hi, 0);
    assert_eq!(d, 0, "first packet is forward");
    let (_, d) = t.lookup_or_insert(&k, Dir::Lo, 1);
    assert_eq!(d, 1, "the other way is reverse");
}

#[test]
fn a_half_full_table_keeps_every_live_flow() {
    // 32768 random flows in a 65536-way table: with two candidate buckets
    // per key almost nothing is evicted (one 8-way bucket evicted ~2%).
    let mut t = FlowTable::new(65536, Timeouts::with_hz(1));
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut keys = Vec::new();
    for _ in 0..32768 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let (k, d) = FlowKey::new(crate::vocab::mapped_v4((x as u32).to_be_bytes()), (x >> 32) as u16, v4(1), (x >> 48) as u16, 17);
        t.lookup_or_insert(&k, d, 1);
        keys.push((k, d));
    }
    let evicted = t.stats.evicted;
    assert!(evicted <= 32, "{evicted} of 32768 evicted at half load");
    assert_eq!(t.stats.active, 32768 - evicted);
    // The survivors are found again, not re-created.
    let created = t.stats.created;
    let mut found = 0;
    for (k, d) in &keys {
        let before = t.stats.created;
        t.lookup_or_insert(k, *d, 2);
        found += (t.stats.created == before) as u64;
    }
    assert!(found >= 32768 - 2 * evicted, "found {found}");
    assert!(t.stats.created - created <= 2 * evicted);
}
