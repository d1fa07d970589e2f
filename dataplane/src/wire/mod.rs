//! Packet formats: zero-copy views over byte buffers and their validated
//! `Repr` forms, one file per protocol, no state (smoltcp's `wire`).
//!
//! A view is `Packet<T: AsRef<[u8]>>`; `new_checked` runs `check_len` once
//! and after that no getter panics. Setters need `AsMut<[u8]>`. A `Repr`
//! has `parse`, `emit` and `buffer_len`. Parsing failures are an [`Error`];
//! the stage that parsed maps it to the drop reason an operator reads.

pub mod arp;
pub mod bfd;
pub mod checksum;
pub mod ethernet;
pub mod frame;
pub mod gtpu;
pub mod icmpv4;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;
pub mod vlan;
pub mod wireguard;

use core::fmt;

pub use ethernet::{EtherType, EthernetAddress};
pub use ipv4::Ipv4Address;
pub use ipv6::Ipv6Address;

/// Why bytes did not parse as a protocol's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Shorter than the header (or than a length field says).
    Truncated,
    /// A field holds a value the protocol does not allow.
    Malformed,
    /// The checksum does not verify.
    Checksum,
    /// Valid, but not something this implementation handles.
    Unsupported,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "truncated",
            Error::Malformed => "malformed",
            Error::Checksum => "bad checksum",
            Error::Unsupported => "unsupported",
        })
    }
}

pub type Result<T> = core::result::Result<T, Error>;

/// Header options kept as bytes (IPv4 and TCP alike): at most 40, a
/// multiple of 4; their content is not interpreted.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct OptionBytes {
    len: u8,
    bytes: [u8; 40],
}

impl OptionBytes {
    pub const NONE: OptionBytes = OptionBytes { len: 0, bytes: [0; 40] };

    /// Options of `b`, if it is at most 40 bytes and a multiple of 4.
    pub fn new(b: &[u8]) -> Option<OptionBytes> {
        if b.len() > 40 || !b.len().is_multiple_of(4) {
            return None;
        }
        let mut o = OptionBytes { len: b.len() as u8, bytes: [0; 40] };
        o.bytes[..b.len()].copy_from_slice(b);
        Some(o)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl fmt::Debug for OptionBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Options({:02x?})", self.as_bytes())
    }
}

/// IP protocol numbers (IPv4 `protocol`, IPv6 `next header`).
pub mod ip_proto {
    pub const HOP_BY_HOP: u8 = 0;
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const IPV6_ROUTING: u8 = 43;
    pub const IPV6_FRAGMENT: u8 = 44;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    pub const IPV6_NO_NEXT: u8 = 59;
    pub const IPV6_DEST_OPTS: u8 = 60;
    pub const MOBILITY: u8 = 135;
    pub const HIP: u8 = 139;
    pub const SHIM6: u8 = 140;
}

/// Reads a big-endian u16 at `at` (caller checked the length).
#[inline(always)]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline(always)]
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline(always)]
pub(crate) fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline(always)]
pub(crate) fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

#[cfg(test)]
mod roundtrip;
