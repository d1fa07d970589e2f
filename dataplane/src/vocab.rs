//! The vocabulary every stage shares: traffic classes, application
//! categories and ids, and the bidirectional flow key. A leaf: it imports
//! nothing from the crate, so any layer may use it (docs/ARCHITECTURE.md).

/// Traffic classes, highest priority first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Class {
    /// The appliance's own handshakes, probes and BFD.
    Control = 0,
    /// VoIP, gaming.
    RealTime = 1,
    /// Conferencing.
    Interactive = 2,
    /// Video.
    Streaming = 3,
    /// Web, databases: the default.
    #[default]
    Standard = 4,
    /// File transfer.
    Bulk = 5,
}

pub const CLASSES: usize = 6;

impl Class {
    pub const ALL: [Class; CLASSES] = [Class::Control, Class::RealTime, Class::Interactive, Class::Streaming, Class::Standard, Class::Bulk];

    pub fn name(self) -> &'static str {
        match self {
            Class::Control => "control",
            Class::RealTime => "realtime",
            Class::Interactive => "interactive",
            Class::Streaming => "streaming",
            Class::Standard => "standard",
            Class::Bulk => "bulk",
        }
    }

    pub fn from_name(s: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.name().eq_ignore_ascii_case(s))
    }

    /// The class of an application of `category` that names none.
    pub fn for_category(category: Category) -> Class {
        use Category as C;
        match category {
            C::VoIP | C::Gaming => Class::RealTime,
            C::Conferencing | C::RemoteAccess => Class::Interactive,
            C::Video | C::Music => Class::Streaming,
            C::FileTransfer | C::Cloud => Class::Bulk,
            _ => Class::Standard,
        }
    }
}

/// Application categories.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    #[default]
    Unknown,
    Web,
    Video,
    Music,
    VoIP,
    Conferencing,
    Collaboration,
    Gaming,
    FileTransfer,
    Database,
    Tunnel,
    NetworkService,
    RemoteAccess,
    Email,
    Cloud,
}

impl Category {
    pub const ALL: [Category; 15] = [
        Category::Unknown,
        Category::Web,
        Category::Video,
        Category::Music,
        Category::VoIP,
        Category::Conferencing,
        Category::Collaboration,
        Category::Gaming,
        Category::FileTransfer,
        Category::Database,
        Category::Tunnel,
        Category::NetworkService,
        Category::RemoteAccess,
        Category::Email,
        Category::Cloud,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Category::Unknown => "Unknown",
            Category::Web => "Web",
            Category::Video => "Video",
            Category::Music => "Music",
            Category::VoIP => "VoIP",
            Category::Conferencing => "Conferencing",
            Category::Collaboration => "Collaboration",
            Category::Gaming => "Gaming",
            Category::FileTransfer => "FileTransfer",
            Category::Database => "Database",
            Category::Tunnel => "Tunnel",
            Category::NetworkService => "NetworkService",
            Category::RemoteAccess => "RemoteAccess",
            Category::Email => "Email",
            Category::Cloud => "Cloud",
        }
    }

    pub fn parse(s: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.name().eq_ignore_ascii_case(s))
    }
}

/// Index of an application in [`Dpi::apps`]; 0 is "Unknown".
pub type AppId = u16;
pub const UNKNOWN: AppId = 0;

/// Which end of the canonical key sent the packet: `Lo` is the end with
/// the smaller (address, port).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Dir {
    #[default]
    Lo = 0,
    Hi = 1,
}

/// A bidirectional 5-tuple: both directions of a connection give the same
/// key. IPv4 addresses are stored as IPv4-mapped IPv6.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct FlowKey {
    pub lo_addr: [u8; 16],
    pub hi_addr: [u8; 16],
    pub lo_port: u16,
    pub hi_port: u16,
    pub proto: u8,
}

impl FlowKey {
    /// The key of a packet from (src, sport) to (dst, dport), and the
    /// packet's direction in it.
    #[inline]
    pub fn new(src: [u8; 16], sport: u16, dst: [u8; 16], dport: u16, proto: u8) -> (FlowKey, Dir) {
        // Big-endian integers order as the bytes do, in two compares.
        if (u128::from_be_bytes(src), sport) <= (u128::from_be_bytes(dst), dport) {
            (FlowKey { lo_addr: src, hi_addr: dst, lo_port: sport, hi_port: dport, proto }, Dir::Lo)
        } else {
            (FlowKey { lo_addr: dst, hi_addr: src, lo_port: dport, hi_port: sport, proto }, Dir::Hi)
        }
    }

    /// A 64-bit hash (multiply-xorshift over the key's words): the same for
    /// both directions, since the key is canonical.
    #[inline]
    pub fn hash(&self) -> u64 {
        const K: u64 = 0x9E37_79B9_7F4A_7C15;
        let w = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap());
        let mut h = (self.proto as u64) << 32 | (self.lo_port as u64) << 16 | self.hi_port as u64;
        for part in [&self.lo_addr[..8], &self.lo_addr[8..], &self.hi_addr[..8], &self.hi_addr[8..]] {
            h = (h ^ w(part)).wrapping_mul(K);
            h ^= h >> 29;
        }
        h ^ (h >> 32)
    }

    /// The address and port of one end, as `IpAddr`.
    pub fn end(&self, d: Dir) -> (std::net::IpAddr, u16) {
        let (a, p) = match d {
            Dir::Lo => (self.lo_addr, self.lo_port),
            Dir::Hi => (self.hi_addr, self.hi_port),
        };
        (addr_of(&a), p)
    }
}

pub fn mapped_v4(a: [u8; 4]) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[10] = 0xff;
    m[11] = 0xff;
    m[12..].copy_from_slice(&a);
    m
}

pub fn is_mapped_v4(a: &[u8; 16]) -> bool {
    a[..10] == [0; 10] && a[10] == 0xff && a[11] == 0xff
}

pub fn addr_of(a: &[u8; 16]) -> std::net::IpAddr {
    if is_mapped_v4(a) {
        std::net::IpAddr::V4(std::net::Ipv4Addr::new(a[12], a[13], a[14], a[15]))
    } else {
        std::net::IpAddr::V6(std::net::Ipv6Addr::from(*a))
    }
}
