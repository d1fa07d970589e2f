//! IEEE 802.1Q VLAN tags (and 802.1ad outer tags for QinQ).

use super::{be16, put16, Error, EtherType, Result};

mod field {
    pub const TCI: usize = 0;
    pub const ETHERTYPE: usize = 2;
    pub const PAYLOAD: usize = 4;
}

/// Length of one tag (after the 0x8100/0x88a8 TPID of the enclosing header).
pub const TAG_LEN: usize = field::PAYLOAD;

/// A view of one VLAN tag: TCI then the EtherType of what follows.
#[derive(Debug, Clone)]
pub struct Tag<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Tag<T> {
    pub fn new_unchecked(buffer: T) -> Tag<T> {
        Tag { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Tag<T>> {
        let t = Self::new_unchecked(buffer);
        t.check_len()?;
        Ok(t)
    }

    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < TAG_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Priority code point (3 bits).
    pub fn pcp(&self) -> u8 {
        (be16(self.buffer.as_ref(), field::TCI) >> 13) as u8
    }

    /// Drop eligible indicator.
    pub fn dei(&self) -> bool {
        be16(self.buffer.as_ref(), field::TCI) & 0x1000 != 0
    }

    /// VLAN identifier (12 bits).
    pub fn vid(&self) -> u16 {
        be16(self.buffer.as_ref(), field::TCI) & 0x0fff
    }

    pub fn ethertype(&self) -> EtherType {
        EtherType(be16(self.buffer.as_ref(), field::ETHERTYPE))
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Tag<T> {
    pub fn set_tci(&mut self, pcp: u8, dei: bool, vid: u16) {
        let tci = (pcp as u16 & 7) << 13 | (dei as u16) << 12 | (vid & 0x0fff);
        put16(self.buffer.as_mut(), field::TCI, tci);
    }

    pub fn set_ethertype(&mut self, t: EtherType) {
        put16(self.buffer.as_mut(), field::ETHERTYPE, t.0);
    }
}

/// A VLAN tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Repr {
    pub pcp: u8,
    pub dei: bool,
    pub vid: u16,
    /// EtherType of the encapsulated payload.
    pub ethertype: EtherType,
}

impl Repr {
    /// VLAN IDs 0 (priority tag) and 4095 (reserved) carry no VLAN.
    pub fn parse<T: AsRef<[u8]>>(t: &Tag<T>) -> Result<Repr> {
        t.check_len()?;
        if t.vid() == 0x0fff {
            return Err(Error::Malformed);
        }
        Ok(Repr { pcp: t.pcp(), dei: t.dei(), vid: t.vid(), ethertype: t.ethertype() })
    }

    pub const fn buffer_len(&self) -> usize {
        TAG_LEN
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, t: &mut Tag<T>) {
        t.set_tci(self.pcp, self.dei, self.vid);
        t.set_ethertype(self.ethertype);
    }
}

/// The VLAN stack of a frame: up to two tags (QinQ), outer first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stack {
    pub outer: Option<u16>,
    pub inner: Option<u16>,
}

/// Walks the tags after an Ethernet header. `ethertype` is the header's
/// EtherType and `rest` the bytes after it. Returns the tag stack, the
/// EtherType of the payload and the number of tag bytes. More than two
/// tags is unsupported.
#[inline]
pub fn walk(mut ethertype: EtherType, rest: &[u8]) -> Result<(Stack, EtherType, usize)> {
    let mut stack = Stack::default();
    let mut off = 0;
    while ethertype.is_vlan() {
        let tag = Repr::parse(&Tag::new_checked(&rest[off..])?)?;
        match (stack.outer, stack.inner) {
            (None, _) => stack.outer = Some(tag.vid),
            (Some(_), None) => stack.inner = Some(tag.vid),
            _ => return Err(Error::Unsupported),
        }
        ethertype = tag.ethertype;
        off += TAG_LEN;
    }
    Ok((stack, ethertype, off))
}

#[cfg(test)]
mod tests {
    use super::*;

    // TCI: PCP 5, DEI 0, VID 100; then IPv4.
    static TAG: [u8; 4] = [0xa0, 0x64, 0x08, 0x00];

    #[test]
    fn test_parse() {
        let r = Repr::parse(&Tag::new_checked(&TAG[..]).unwrap()).unwrap();
        assert_eq!(r, Repr { pcp: 5, dei: false, vid: 100, ethertype: EtherType::IPV4 });
    }

    #[test]
    fn test_emit() {
        let mut b = [0u8; 4];
        Repr { pcp: 5, dei: false, vid: 100, ethertype: EtherType::IPV4 }.emit(&mut Tag::new_unchecked(&mut b[..]));
        assert_eq!(b, TAG);
    }

    #[test]
    fn test_impossible_len() {
        assert_eq!(Tag::new_checked(&TAG[..3]).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn qinq_walk() {
        // 802.1ad outer VID 10 -> 802.1Q inner VID 20 -> IPv6.
        let rest = [0x00, 0x0a, 0x81, 0x00, 0x00, 0x14, 0x86, 0xdd, 0x60];
        let (stack, et, off) = walk(EtherType::QINQ, &rest).unwrap();
        assert_eq!(stack, Stack { outer: Some(10), inner: Some(20) });
        assert_eq!(et, EtherType::IPV6);
        assert_eq!(off, 8);
        assert_eq!(walk(EtherType::IPV4, &rest).unwrap(), (Stack::default(), EtherType::IPV4, 0));
        // Three tags: unsupported; a tag cut short: truncated; VID 4095: malformed.
        let three = [0, 1, 0x81, 0, 0, 2, 0x81, 0, 0, 3, 0x08, 0];
        assert_eq!(walk(EtherType::VLAN, &three).unwrap_err(), Error::Unsupported);
        assert_eq!(walk(EtherType::VLAN, &rest[..3]).unwrap_err(), Error::Truncated);
        assert_eq!(walk(EtherType::VLAN, &[0x0f, 0xff, 0x08, 0x00]).unwrap_err(), Error::Malformed);
    }
}
