//! Property tests: for every protocol, `emit` then `parse` gives back the
//! same `Repr`, and parsing arbitrary bytes never panics.

use proptest::prelude::*;

use super::*;

fn mac() -> impl Strategy<Value = EthernetAddress> {
    any::<[u8; 6]>().prop_map(EthernetAddress)
}
fn v4() -> impl Strategy<Value = Ipv4Address> {
    any::<[u8; 4]>().prop_map(Ipv4Address)
}
fn v6() -> impl Strategy<Value = Ipv6Address> {
    any::<[u8; 16]>().prop_map(Ipv6Address)
}

proptest! {
    #[test]
    fn ethernet(src in mac(), dst in mac(), et in any::<u16>()) {
        let r = ethernet::Repr { src, dst, ethertype: EtherType(et) };
        let mut b = [0u8; 14];
        r.emit(&mut ethernet::Frame::new_unchecked(&mut b[..]));
        prop_assert_eq!(ethernet::Repr::parse(&ethernet::Frame::new_checked(&b[..]).unwrap()).unwrap(), r);
    }

    #[test]
    fn vlan(pcp in 0u8..8, dei in any::<bool>(), vid in 0u16..4095, et in any::<u16>()) {
        let r = vlan::Repr { pcp, dei, vid, ethertype: EtherType(et) };
        let mut b = [0u8; 4];
        r.emit(&mut vlan::Tag::new_unchecked(&mut b[..]));
        prop_assert_eq!(vlan::Repr::parse(&vlan::Tag::new_checked(&b[..]).unwrap()).unwrap(), r);
    }

    #[test]
    fn arp(req in any::<bool>(), sha in mac(), spa in v4(), tha in mac(), tpa in v4()) {
        let operation = if req { arp::Operation::Request } else { arp::Operation::Reply };
        let r = arp::Repr { operation, source_hardware_addr: sha, source_protocol_addr: spa, target_hardware_addr: tha, target_protocol_addr: tpa };
        let mut b = [0u8; 28];
        r.emit(&mut arp::Packet::new_unchecked(&mut b[..]));
        prop_assert_eq!(arp::Repr::parse(&arp::Packet::new_checked(&b[..]).unwrap()).unwrap(), r);
    }

    #[test]
    fn ipv4(src in v4(), dst in v4(), protocol in any::<u8>(), ttl in any::<u8>(), dscp in 0u8..64, ecn in 0u8..4,
            ident in any::<u16>(), df in any::<bool>(), mf in any::<bool>(), off in 0u16..8192, opt_words in 0usize..11,
            opt_byte in any::<u8>(), payload_len in 0usize..200) {
        let options = ipv4::Options::new(&vec![opt_byte; opt_words * 4]).unwrap();
        let r = ipv4::Repr { src, dst, protocol, ttl, dscp, ecn, ident, dont_frag: df, more_frags: mf, frag_offset: off * 8, options, payload_len };
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(&mut ipv4::Packet::new_unchecked(&mut b[..]));
        prop_assert_eq!(ipv4::Repr::parse(&ipv4::Packet::new_checked(&b[..]).unwrap()).unwrap(), r);
    }

    #[test]
    fn ipv6(src in v6(), dst in v6(), nh in any::<u8>(), hl in any::<u8>(), tc in any::<u8>(), flow in 0u32..(1 << 20), payload_len in 0usize..200) {
        let r = ipv6::Repr { src, dst, next_header: nh, hop_limit: hl, traffic_class: tc, flow_label: flow, payload_len };
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(&mut ipv6::Packet::new_unchecked(&mut b[..]));
        prop_assert_eq!(ipv6::Repr::parse(&ipv6::Packet::new_checked(&b[..]).unwrap()).unwrap(), r);
    }

    #[test]
    fn icmpv4(kind in 0u8..4, a in any::<u16>(), c in any::<u16>(), code in any::<u8>(), data in proptest::collection::vec(any::<u8>(), 0..64)) {
        let r = match kind {
            0 => icmpv4::Repr::EchoRequest { ident: a, seq_no: c, data: &data },
            1 => icmpv4::Repr::EchoReply { ident: a, seq_no: c, data: &data },
            2 => icmpv4::Repr::DstUnreachable { code, next_hop_mtu: c, original: &data },
            _ => icmpv4::Repr::TimeExceeded { code, original: &data },
        };
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(&mut icmpv4::Packet::new_unchecked(&mut b[..]));
        let p = icmpv4::Packet::new_checked(&b[..]).unwrap();
        prop_assert_eq!(icmpv4::Repr::parse(&p).unwrap(), r);
    }

    #[test]
    fn icmpv6(kind in 0u8..6, src in v6(), dst in v6(), target in v6(), a in any::<u16>(), c in any::<u16>(), ll in proptest::option::of(mac()),
              flags in any::<u8>(), data in proptest::collection::vec(any::<u8>(), 0..64)) {
        let target = if target.is_multicast() { Ipv6Address::UNSPECIFIED } else { target };
        let r = match kind {
            0 => icmpv6::Repr::EchoRequest { ident: a, seq_no: c, data: &data },
            1 => icmpv6::Repr::TimeExceeded { code: flags, original: &data },
            2 => icmpv6::Repr::PacketTooBig { mtu: (a as u32) << 16 | c as u32, original: &data },
            3 => icmpv6::Repr::NeighborSolicit { target, source_lladdr: ll },
            4 => icmpv6::Repr::NeighborAdvert { flags: flags & 0xe0, target, target_lladdr: ll },
            _ => icmpv6::Repr::RouterSolicit { source_lladdr: ll },
        };
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(src, dst, &mut icmpv6::Packet::new_unchecked(&mut b[..]));
        let p = icmpv6::Packet::new_checked(&b[..]).unwrap();
        prop_assert_eq!(icmpv6::Repr::parse(src, dst, &p).unwrap(), r);
    }

    #[test]
    fn udp(sp in any::<u16>(), dp in any::<u16>(), src in v4(), dst in v4(), payload in proptest::collection::vec(any::<u8>(), 0..100)) {
        let r = udp::Repr { src_port: sp, dst_port: dp, payload_len: payload.len() };
        let mut b = vec![0u8; r.buffer_len()];
        b[8..].copy_from_slice(&payload);
        let ps = checksum::pseudo_v4(src, dst, ip_proto::UDP, b.len() as u16);
        r.emit(&mut udp::Packet::new_unchecked(&mut b[..]), Some(ps));
        prop_assert_eq!(udp::Repr::parse(&udp::Packet::new_checked(&b[..]).unwrap(), Some(ps)).unwrap(), r);
    }

    #[test]
    fn tcp(sp in any::<u16>(), dp in any::<u16>(), seq in any::<u32>(), ack in any::<u32>(), fl in 0u16..256, win in any::<u16>(),
           urg in any::<u16>(), opt_words in 0usize..11, src in v6(), dst in v6(), payload in proptest::collection::vec(any::<u8>(), 0..100)) {
        let fl = if fl & tcp::flags::SYN != 0 { fl & !tcp::flags::FIN } else { fl };
        let r = tcp::Repr { src_port: sp, dst_port: dp, seq, ack, flags: fl, window: win, urgent: urg,
                            options: tcp::Options::new(&vec![1u8; opt_words * 4]).unwrap(), payload_len: payload.len() };
        let mut b = vec![0u8; r.buffer_len()];
        let hl = r.header_len();
        b[hl..].copy_from_slice(&payload);
        let ps = checksum::pseudo_v6(src, dst, ip_proto::TCP, b.len() as u32);
        r.emit(&mut tcp::Packet::new_unchecked(&mut b[..]), Some(ps));
        prop_assert_eq!(tcp::Repr::parse(&tcp::Packet::new_checked(&b[..]).unwrap(), Some(ps)).unwrap(), r);
    }

    /// Arbitrary bytes: every parser returns, never panics.
    #[test]
    fn parsers_never_panic(b in proptest::collection::vec(any::<u8>(), 0..120), nh in any::<u8>()) {
        let _ = ethernet::Frame::new_checked(&b[..]).map(|f| ethernet::Repr::parse(&f));
        let _ = vlan::walk(EtherType::VLAN, &b);
        let _ = arp::Packet::new_checked(&b[..]).map(|p| arp::Repr::parse(&p));
        let _ = ipv4::Packet::new_checked(&b[..]).map(|p| ipv4::Repr::parse(&p));
        let _ = ipv6::Packet::new_checked(&b[..]).map(|p| ipv6::Repr::parse(&p));
        let _ = ipv6::walk_extensions(nh, &b);
        if let Ok(p) = icmpv4::Packet::new_checked(&b[..]) { let _ = icmpv4::Repr::parse(&p); }
        if let Ok(p) = icmpv6::Packet::new_checked(&b[..]) { let _ = icmpv6::Repr::parse(Ipv6Address::UNSPECIFIED, Ipv6Address::ALL_NODES, &p); }
        let _ = udp::Packet::new_checked(&b[..]).map(|p| udp::Repr::parse(&p, Some(0)));
        let _ = tcp::Packet::new_checked(&b[..]).map(|p| tcp::Repr::parse(&p, Some(0)));
    }
}
