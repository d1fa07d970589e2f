//! ICMPv6 (RFC 4443) and the Neighbor Discovery messages (RFC 4861) the
//! appliance needs: echo, errors, RS/RA/NS/NA with link-layer options.

use super::checksum;
use super::{be16, be32, ip_proto, put16, put32, Error, EthernetAddress, Ipv6Address, Result};

pub mod msg {
    pub const DST_UNREACHABLE: u8 = 1;
    pub const PACKET_TOO_BIG: u8 = 2;
    pub const TIME_EXCEEDED: u8 = 3;
    pub const PARAM_PROBLEM: u8 = 4;
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
    pub const ROUTER_SOLICIT: u8 = 133;
    pub const ROUTER_ADVERT: u8 = 134;
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    pub const NEIGHBOR_ADVERT: u8 = 136;
    pub const REDIRECT: u8 = 137;
}

/// Destination-unreachable codes the appliance sends.
pub mod unreachable {
    pub const NO_ROUTE: u8 = 0;
    pub const ADMIN_PROHIBITED: u8 = 1;
    pub const ADDRESS: u8 = 3;
    pub const PORT: u8 = 4;
}

/// NDP option types.
pub mod opt {
    pub const SOURCE_LLADDR: u8 = 1;
    pub const TARGET_LLADDR: u8 = 2;
    pub const PREFIX_INFO: u8 = 3;
    pub const MTU: u8 = 5;
}

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const REST: usize = 4;
    pub const BODY: usize = 8;
}

/// Length of the header including the 4 type-specific bytes.
pub const HEADER_LEN: usize = field::BODY;

/// Neighbor Advertisement flags.
pub const NA_ROUTER: u8 = 0x80;
pub const NA_SOLICITED: u8 = 0x40;
pub const NA_OVERRIDE: u8 = 0x20;

/// A view of an ICMPv6 message.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// The 4 type-specific bytes after the checksum.
    pub fn rest(&self) -> u32 {
        be32(self.buffer.as_ref(), field::REST)
    }
    /// Everything after the first 8 bytes.
    pub fn body(&self) -> &[u8] {
        &self.buffer.as_ref()[field::BODY..]
    }
    pub fn verify_checksum(&self, src: Ipv6Address, dst: Ipv6Address) -> bool {
        let b = self.buffer.as_ref();
        let pseudo = checksum::pseudo_v6(src, dst, ip_proto::ICMPV6, b.len() as u32);
        checksum::combine(pseudo, checksum::sum(b)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_msg_type(&mut self, v: u8) {
        self.buffer.as_mut()[field::TYPE] = v;
    }
    pub fn set_msg_code(&mut self, v: u8) {
        self.buffer.as_mut()[field::CODE] = v;
    }
    pub fn set_rest(&mut self, v: u32) {
        put32(self.buffer.as_mut(), field::REST, v);
    }
    pub fn body_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::BODY..]
    }
    pub fn fill_checksum(&mut self, src: Ipv6Address, dst: Ipv6Address) {
        put16(self.buffer.as_mut(), field::CHECKSUM, 0);
        let b = self.buffer.as_ref();
        let pseudo = checksum::pseudo_v6(src, dst, ip_proto::ICMPV6, b.len() as u32);
        let c = checksum::finish(checksum::combine(pseudo, checksum::sum(b)));
        put16(self.buffer.as_mut(), field::CHECKSUM, c);
    }
}

/// The link-layer address option among NDP options, and whether the
/// options are well formed (RFC 4861 4.6: no zero-length option).
fn lladdr_option(mut opts: &[u8], want: u8) -> Result<Option<EthernetAddress>> {
    let mut found = None;
    while !opts.is_empty() {
        if opts.len() < 2 {
            return Err(Error::Truncated);
        }
        let len = opts[1] as usize * 8;
        if len == 0 {
            return Err(Error::Malformed);
        }
        if opts.len() < len {
            return Err(Error::Truncated);
        }
        if opts[0] == want {
            if len != 8 {
                return Err(Error::Malformed); // Ethernet: exactly 8 bytes
            }
            found = Some(EthernetAddress::from_bytes(&opts[2..8]));
        }
        opts = &opts[len..];
    }
    Ok(found)
}

fn put_lladdr(b: &mut [u8], kind: u8, a: EthernetAddress) {
    b[0] = kind;
    b[1] = 1;
    b[2..8].copy_from_slice(&a.0);
}

/// A validated ICMPv6 message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repr<'a> {
    EchoRequest {
        ident: u16,
        seq_no: u16,
        data: &'a [u8],
    },
    EchoReply {
        ident: u16,
        seq_no: u16,
        data: &'a [u8],
    },
    DstUnreachable {
        code: u8,
        original: &'a [u8],
    },
    PacketTooBig {
        mtu: u32,
        original: &'a [u8],
    },
    TimeExceeded {
        code: u8,
        original: &'a [u8],
    },
    ParamProblem {
        code: u8,
        pointer: u32,
        original: &'a [u8],
    },
    RouterSolicit {
        source_lladdr: Option<EthernetAddress>,
    },
    RouterAdvert {
        hop_limit: u8,
        flags: u8,
        router_lifetime: u16,
        reachable_time: u32,
        retrans_time: u32,
        source_lladdr: Option<EthernetAddress>,
    },
    NeighborSolicit {
        target: Ipv6Address,
        source_lladdr: Option<EthernetAddress>,
    },
    /// `flags`: [`NA_ROUTER`] | [`NA_SOLICITED`] | [`NA_OVERRIDE`].
    NeighborAdvert {
        flags: u8,
        target: Ipv6Address,
        target_lladdr: Option<EthernetAddress>,
    },
    /// Any other message: checksummed, not interpreted.
    Other {
        msg_type: u8,
        code: u8,
    },
}

impl<'a> Repr<'a> {
    /// Parses and verifies the checksum against the IPv6 pseudo-header.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(src: Ipv6Address, dst: Ipv6Address, p: &'a Packet<&'a T>) -> Result<Repr<'a>> {
        p.check_len()?;
        if !p.verify_checksum(src, dst) {
            return Err(Error::Checksum);
        }
        let rest = p.rest();
        let body = p.body();
        let nd_code = |code: u8| if code == 0 { Ok(()) } else { Err(Error::Malformed) };
        Ok(match p.msg_type() {
            msg::ECHO_REQUEST | msg::ECHO_REPLY => {
                nd_code(p.msg_code())?;
                let (ident, seq_no) = ((rest >> 16) as u16, rest as u16);
                if p.msg_type() == msg::ECHO_REQUEST {
                    Repr::EchoRequest { ident, seq_no, data: body }
                } else {
                    Repr::EchoReply { ident, seq_no, data: body }
                }
            }
            msg::DST_UNREACHABLE => Repr::DstUnreachable { code: p.msg_code(), original: body },
            msg::PACKET_TOO_BIG => Repr::PacketTooBig { mtu: rest, original: body },
            msg::TIME_EXCEEDED => Repr::TimeExceeded { code: p.msg_code(), original: body },
            msg::PARAM_PROBLEM => Repr::ParamProblem { code: p.msg_code(), pointer: rest, original: body },
            msg::ROUTER_SOLICIT => {
                nd_code(p.msg_code())?;
                Repr::RouterSolicit { source_lladdr: lladdr_option(body, opt::SOURCE_LLADDR)? }
            }
            msg::ROUTER_ADVERT => {
                nd_code(p.msg_code())?;
                if body.len() < 8 {
                    return Err(Error::Truncated);
                }
                Repr::RouterAdvert {
                    hop_limit: (rest >> 24) as u8,
                    flags: (rest >> 16) as u8,
                    router_lifetime: rest as u16,
                    reachable_time: be32(body, 0),
                    retrans_time: be32(body, 4),
                    source_lladdr: lladdr_option(&body[8..], opt::SOURCE_LLADDR)?,
                }
            }
            msg::NEIGHBOR_SOLICIT | msg::NEIGHBOR_ADVERT => {
                nd_code(p.msg_code())?;
                if body.len() < 16 {
                    return Err(Error::Truncated);
                }
                let target = Ipv6Address::from_bytes(&body[..16]);
                if target.is_multicast() {
                    return Err(Error::Malformed);
                }
                if p.msg_type() == msg::NEIGHBOR_SOLICIT {
                    Repr::NeighborSolicit { target, source_lladdr: lladdr_option(&body[16..], opt::SOURCE_LLADDR)? }
                } else {
                    let flags = (rest >> 24) as u8 & (NA_ROUTER | NA_SOLICITED | NA_OVERRIDE);
                    Repr::NeighborAdvert { flags, target, target_lladdr: lladdr_option(&body[16..], opt::TARGET_LLADDR)? }
                }
            }
            t => Repr::Other { msg_type: t, code: p.msg_code() },
        })
    }

    pub fn buffer_len(&self) -> usize {
        let ll = |o: &Option<EthernetAddress>| if o.is_some() { 8 } else { 0 };
        HEADER_LEN
            + match self {
                Repr::EchoRequest { data, .. } | Repr::EchoReply { data, .. } => data.len(),
                Repr::DstUnreachable { original, .. }
                | Repr::PacketTooBig { original, .. }
                | Repr::TimeExceeded { original, .. }
                | Repr::ParamProblem { original, .. } => original.len(),
                Repr::RouterSolicit { source_lladdr } => ll(source_lladdr),
                Repr::RouterAdvert { source_lladdr, .. } => 8 + ll(source_lladdr),
                Repr::NeighborSolicit { source_lladdr, .. } => 16 + ll(source_lladdr),
                Repr::NeighborAdvert { target_lladdr, .. } => 16 + ll(target_lladdr),
                Repr::Other { .. } => 0,
            }
    }

    /// Writes the whole message, checksum included; the buffer must be
    /// exactly `buffer_len()` long.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, src: Ipv6Address, dst: Ipv6Address, p: &mut Packet<T>) {
        let (t, code, rest) = match *self {
            Repr::EchoRequest { ident, seq_no, .. } => (msg::ECHO_REQUEST, 0, (ident as u32) << 16 | seq_no as u32),
            Repr::EchoReply { ident, seq_no, .. } => (msg::ECHO_REPLY, 0, (ident as u32) << 16 | seq_no as u32),
            Repr::DstUnreachable { code, .. } => (msg::DST_UNREACHABLE, code, 0),
            Repr::PacketTooBig { mtu, .. } => (msg::PACKET_TOO_BIG, 0, mtu),
            Repr::TimeExceeded { code, .. } => (msg::TIME_EXCEEDED, code, 0),
            Repr::ParamProblem { code, pointer, .. } => (msg::PARAM_PROBLEM, code, pointer),
            Repr::RouterSolicit { .. } => (msg::ROUTER_SOLICIT, 0, 0),
            Repr::RouterAdvert { hop_limit, flags, router_lifetime, .. } => {
                (msg::ROUTER_ADVERT, 0, (hop_limit as u32) << 24 | (flags as u32) << 16 | router_lifetime as u32)
            }
            Repr::NeighborSolicit { .. } => (msg::NEIGHBOR_SOLICIT, 0, 0),
            Repr::NeighborAdvert { flags, .. } => (msg::NEIGHBOR_ADVERT, 0, (flags as u32) << 24),
            Repr::Other { msg_type, code } => (msg_type, code, 0),
        };
        p.set_msg_type(t);
        p.set_msg_code(code);
        p.set_rest(rest);
        let body = p.body_mut();
        match *self {
            Repr::EchoRequest { data, .. } | Repr::EchoReply { data, .. } => body.copy_from_slice(data),
            Repr::DstUnreachable { original, .. }
            | Repr::PacketTooBig { original, .. }
            | Repr::TimeExceeded { original, .. }
            | Repr::ParamProblem { original, .. } => body.copy_from_slice(original),
            Repr::RouterSolicit { source_lladdr } => {
                if let Some(a) = source_lladdr {
                    put_lladdr(body, opt::SOURCE_LLADDR, a);
                }
            }
            Repr::RouterAdvert { reachable_time, retrans_time, source_lladdr, .. } => {
                put32(body, 0, reachable_time);
                put32(body, 4, retrans_time);
                if let Some(a) = source_lladdr {
                    put_lladdr(&mut body[8..], opt::SOURCE_LLADDR, a);
                }
            }
            Repr::NeighborSolicit { target, source_lladdr } => {
                body[..16].copy_from_slice(&target.0);
                if let Some(a) = source_lladdr {
                    put_lladdr(&mut body[16..], opt::SOURCE_LLADDR, a);
                }
            }
            Repr::NeighborAdvert { target, target_lladdr, .. } => {
                body[..16].copy_from_slice(&target.0);
                if let Some(a) = target_lladdr {
                    put_lladdr(&mut body[16..], opt::TARGET_LLADDR, a);
                }
            }
            Repr::Other { .. } => {}
        }
        p.fill_checksum(src, dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv6Address {
        s.parse::<std::net::Ipv6Addr>().unwrap().into()
    }

    // Neighbor solicitation from fe80::1 (02:00:00:00:00:01) for fe80::2,
    // sent to ff02::1:ff00:2. Checksum computed independently (see golden test).
    fn ns_bytes() -> Vec<u8> {
        let mut b = vec![135, 0, 0, 0, 0, 0, 0, 0];
        b.extend(a("fe80::2").0);
        b.extend([1, 1, 2, 0, 0, 0, 0, 1]);
        b
    }

    #[test]
    fn golden_ns_checksum() {
        // Sum of pseudo-header (fe80::1, ff02::1:ff00:2, len 32, nh 58) and
        // the message, by hand in 16-bit words:
        //   fe80+0001 + ff02+0001+ff00+0002 + 0020 + 003a       (pseudo)
        // + 8700 + fe80+0002 + 0101+0200+0000+0001             (message)
        let words: [u32; 15] =
            [0xfe80, 0x0001, 0xff02, 0x0001, 0xff00, 0x0002, 0x0020, 0x003a, 0x8700, 0xfe80, 0x0002, 0x0101, 0x0200, 0x0000, 0x0001];
        let mut s: u32 = words.iter().sum();
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        let want = !(s as u16);
        let mut b = ns_bytes();
        Packet::new_unchecked(&mut b[..]).fill_checksum(a("fe80::1"), a("ff02::1:ff00:2"));
        assert_eq!(u16::from_be_bytes([b[2], b[3]]), want);
    }

    #[test]
    fn test_parse() {
        let mut b = ns_bytes();
        Packet::new_unchecked(&mut b[..]).fill_checksum(a("fe80::1"), a("ff02::1:ff00:2"));
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            Repr::parse(a("fe80::1"), a("ff02::1:ff00:2"), &p).unwrap(),
            Repr::NeighborSolicit { target: a("fe80::2"), source_lladdr: Some(EthernetAddress([2, 0, 0, 0, 0, 1])) }
        );
        assert_eq!(Repr::parse(a("fe80::9"), a("ff02::1:ff00:2"), &p).unwrap_err(), Error::Checksum, "pseudo-header counts");
    }

    #[test]
    fn test_emit() {
        let r = Repr::NeighborSolicit { target: a("fe80::2"), source_lladdr: Some(EthernetAddress([2, 0, 0, 0, 0, 1])) };
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(a("fe80::1"), a("ff02::1:ff00:2"), &mut Packet::new_unchecked(&mut b[..]));
        let mut want = ns_bytes();
        Packet::new_unchecked(&mut want[..]).fill_checksum(a("fe80::1"), a("ff02::1:ff00:2"));
        assert_eq!(b, want);
    }

    #[test]
    fn test_impossible_len() {
        assert_eq!(Packet::new_checked(&[135u8, 0, 0, 0, 0, 0, 0][..]).unwrap_err(), Error::Truncated);
        // An NS too short for its target.
        let mut b = vec![135, 0, 0, 0, 0, 0, 0, 0, 0xfe, 0x80];
        Packet::new_unchecked(&mut b[..]).fill_checksum(a("fe80::1"), a("fe80::2"));
        assert_eq!(Repr::parse(a("fe80::1"), a("fe80::2"), &Packet::new_unchecked(&b[..])).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn nd_options_are_validated() {
        let (s, d) = (a("fe80::1"), a("fe80::2"));
        let with_opts = |opts: &[u8]| {
            let mut b = vec![136, 0, 0, 0, 0x60, 0, 0, 0];
            b.extend(a("fe80::1").0);
            b.extend(opts);
            Packet::new_unchecked(&mut b[..]).fill_checksum(s, d);
            b
        };
        let b = with_opts(&[2, 1, 1, 2, 3, 4, 5, 6]);
        assert_eq!(
            Repr::parse(s, d, &Packet::new_unchecked(&b[..])).unwrap(),
            Repr::NeighborAdvert { flags: NA_SOLICITED | NA_OVERRIDE, target: s, target_lladdr: Some(EthernetAddress([1, 2, 3, 4, 5, 6])) }
        );
        let b = with_opts(&[2, 0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(Repr::parse(s, d, &Packet::new_unchecked(&b[..])).unwrap_err(), Error::Malformed, "zero-length option");
        let b = with_opts(&[2, 2, 1, 2, 3, 4, 5, 6]);
        assert_eq!(Repr::parse(s, d, &Packet::new_unchecked(&b[..])).unwrap_err(), Error::Truncated, "option longer than packet");
        let mut b = vec![136, 0, 0, 0, 0, 0, 0, 0];
        b.extend(a("ff02::1").0);
        Packet::new_unchecked(&mut b[..]).fill_checksum(s, d);
        assert_eq!(Repr::parse(s, d, &Packet::new_unchecked(&b[..])).unwrap_err(), Error::Malformed, "multicast target");
    }

    #[test]
    fn every_variant_round_trips() {
        let (s, d) = (a("2001:db8::1"), a("2001:db8::2"));
        let orig = [0x60u8, 0, 0, 0, 0, 8, 17, 1, 9, 9];
        let mac = Some(EthernetAddress([2, 0, 0, 0, 0, 7]));
        let all = [
            Repr::EchoRequest { ident: 7, seq_no: 9, data: b"hello" },
            Repr::EchoReply { ident: 7, seq_no: 9, data: b"" },
            Repr::DstUnreachable { code: unreachable::NO_ROUTE, original: &orig },
            Repr::PacketTooBig { mtu: 1280, original: &orig },
            Repr::TimeExceeded { code: 0, original: &orig },
            Repr::ParamProblem { code: 1, pointer: 40, original: &orig },
            Repr::RouterSolicit { source_lladdr: mac },
            Repr::RouterAdvert { hop_limit: 64, flags: 0, router_lifetime: 1800, reachable_time: 0, retrans_time: 0, source_lladdr: mac },
            Repr::NeighborSolicit { target: d, source_lladdr: None },
            Repr::NeighborAdvert { flags: NA_ROUTER, target: s, target_lladdr: mac },
        ];
        for r in all {
            let mut b = vec![0u8; r.buffer_len()];
            r.emit(s, d, &mut Packet::new_unchecked(&mut b[..]));
            assert_eq!(Repr::parse(s, d, &Packet::new_checked(&b[..]).unwrap()).unwrap(), r);
        }
    }
}
