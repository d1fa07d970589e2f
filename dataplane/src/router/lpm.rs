//! Longest-prefix match: a multibit trie with a `ROOT_BITS`-wide first
//! level and 8-bit levels below it (DIR-24-8 when `ROOT_BITS` is 24, the
//! layout of DPDK's `rte_lpm`; 16 keeps the root at 256 KiB). One
//! implementation serves IPv4 (`u32` keys) and IPv6 (`u128` keys).
//!
//! Tables are built whole by the control thread from a route list (prefix
//! expansion, shortest prefixes first) and never change afterwards, so
//! workers read them without any synchronisation.

/// A key: an address as an unsigned integer, most significant bit first.
pub trait Key: Copy + Eq + core::fmt::Debug {
    const BITS: u32;
    /// The `len` bits starting at bit `start` (0 = most significant).
    fn bits(self, start: u32, len: u32) -> usize;
    /// The key with every bit after the first `len` cleared.
    fn truncate(self, len: u32) -> Self;
}

impl Key for u32 {
    const BITS: u32 = 32;
    #[inline(always)]
    fn bits(self, start: u32, len: u32) -> usize {
        ((self << start) >> (32 - len)) as usize
    }
    fn truncate(self, len: u32) -> Self {
        if len == 0 {
            0
        } else {
            self & (u32::MAX << (32 - len))
        }
    }
}

impl Key for u128 {
    const BITS: u32 = 128;
    #[inline(always)]
    fn bits(self, start: u32, len: u32) -> usize {
        ((self << start) >> (128 - len)) as usize
    }
    fn truncate(self, len: u32) -> Self {
        if len == 0 {
            0
        } else {
            self & (u128::MAX << (128 - len))
        }
    }
}

/// Entry: 0 = no route, `GROUP | g` = look in group `g`, else value + 1.
const GROUP: u32 = 1 << 31;
const STRIDE: u32 = 8;
const GROUP_LEN: usize = 1 << STRIDE;

/// Largest value a table can hold.
pub const MAX_VALUE: u32 = GROUP - 2;

/// An immutable longest-prefix-match table from prefixes to `u32` values.
pub struct Lpm<K: Key, const ROOT_BITS: u32 = 16> {
    root: Table,
    groups: Table,
    _key: core::marker::PhantomData<K>,
}

/// Table memory: built in a `Vec`, then moved into anonymous memory the
/// kernel is asked to back with transparent huge pages (`MADV_HUGEPAGE`),
/// since lookups jump around tables of up to tens of MiB and 4 KiB pages
/// turn every level into a TLB miss.
struct Table {
    ptr: *mut u32,
    len: usize,
    map_len: usize,
}

// SAFETY: an immutable array of u32 once built.
unsafe impl Send for Table {}
unsafe impl Sync for Table {}

impl Table {
    const HUGE: usize = 2 << 20;

    fn new(v: &[u32]) -> Table {
        let bytes = v.len() * 4;
        if bytes >= Self::HUGE {
            let map_len = bytes.div_ceil(Self::HUGE) * Self::HUGE;
            // SAFETY: anonymous private mapping; checked for failure below.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    map_len + Self::HUGE,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            if p != libc::MAP_FAILED {
                // Align to 2 MiB inside the mapping so whole huge pages fit.
                let aligned = (p as usize).div_ceil(Self::HUGE) * Self::HUGE;
                // SAFETY: [aligned, aligned + map_len) lies inside the mapping.
                unsafe {
                    let head = aligned - p as usize;
                    if head > 0 {
                        libc::munmap(p, head);
                    }
                    let tail = Self::HUGE - head;
                    if tail > 0 {
                        libc::munmap((aligned + map_len) as *mut libc::c_void, tail);
                    }
                    libc::madvise(aligned as *mut libc::c_void, map_len, libc::MADV_HUGEPAGE);
                    std::ptr::copy_nonoverlapping(v.as_ptr(), aligned as *mut u32, v.len());
                }
                return Table { ptr: aligned as *mut u32, len: v.len(), map_len };
            }
        }
        let b: Box<[u32]> = v.into();
        Table { len: b.len(), ptr: Box::into_raw(b) as *mut u32, map_len: 0 }
    }

    #[inline(always)]
    fn get(&self, i: usize) -> u32 {
        assert!(i < self.len);
        // SAFETY: in bounds, initialised, immutable.
        unsafe { *self.ptr.add(i) }
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        // SAFETY: ptr came from mmap (map_len > 0) or Box::into_raw.
        unsafe {
            if self.map_len > 0 {
                libc::munmap(self.ptr as *mut libc::c_void, self.map_len);
            } else {
                drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.ptr, self.len)));
            }
        }
    }
}

impl<K: Key, const ROOT_BITS: u32> Lpm<K, ROOT_BITS> {
    /// Builds a table from (prefix, length, value). When the same prefix
    /// appears twice the later entry wins. Bits of a prefix beyond its
    /// length are ignored.
    pub fn build(routes: &[(K, u8, u32)]) -> Self {
        assert!(ROOT_BITS >= STRIDE && (K::BITS - ROOT_BITS).is_multiple_of(STRIDE));
        let mut b = Builder { root: vec![0u32; 1 << ROOT_BITS], groups: Vec::new() };
        let mut sorted: Vec<(K, u8, u32)> = routes.iter().map(|&(k, l, v)| (k.truncate(l as u32), l.min(K::BITS as u8), v)).collect();
        sorted.sort_by_key(|r| r.1); // stable: later duplicates win
        for (k, len, v) in sorted {
            assert!(v <= MAX_VALUE, "LPM value out of range");
            b.insert::<K, ROOT_BITS>(k, len as u32, v + 1);
        }
        Lpm { root: Table::new(&b.root), groups: Table::new(&b.groups), _key: core::marker::PhantomData }
    }

    /// The value of the longest prefix containing `key`.
    #[inline(always)]
    pub fn lookup(&self, key: K) -> Option<u32> {
        // In bounds by construction: the root has 2^ROOT_BITS entries and
        // every group index stored in an entry has GROUP_LEN entries.
        let mut e = self.root.get(key.bits(0, ROOT_BITS));
        let mut bit = ROOT_BITS;
        while e & GROUP != 0 {
            e = self.groups.get((e & !GROUP) as usize * GROUP_LEN + key.bits(bit, STRIDE));
            bit += STRIDE;
        }
        e.checked_sub(1)
    }

    /// Bytes of table memory.
    pub fn memory(&self) -> usize {
        (self.root.len + self.groups.len) * 4
    }
}

/// The tables while they are being built.
struct Builder {
    root: Vec<u32>,
    groups: Vec<u32>,
}

impl Builder {
    /// Inserts one prefix. Prefixes arrive shortest first, so the slots a
    /// prefix covers never hold a group yet (groups come from longer
    /// prefixes) and filling them simply replaces shorter matches.
    fn insert<K: Key, const ROOT_BITS: u32>(&mut self, key: K, len: u32, entry: u32) {
        // Level 0: the root.
        if len <= ROOT_BITS {
            let first = key.bits(0, ROOT_BITS);
            let n = 1usize << (ROOT_BITS - len);
            for e in &mut self.root[first..first + n] {
                debug_assert_eq!(*e & GROUP, 0);
                *e = entry;
            }
            return;
        }
        let slot = key.bits(0, ROOT_BITS);
        let mut g = Self::descend(&mut self.root[slot], &mut self.groups);
        let mut bit = ROOT_BITS;
        loop {
            let idx = key.bits(bit, STRIDE);
            if len <= bit + STRIDE {
                let n = 1usize << (bit + STRIDE - len);
                for e in &mut self.groups[g * GROUP_LEN + idx..g * GROUP_LEN + idx + n] {
                    debug_assert_eq!(*e & GROUP, 0);
                    *e = entry;
                }
                return;
            }
            let at = g * GROUP_LEN + idx;
            let mut e = self.groups[at];
            g = Self::descend(&mut e, &mut self.groups);
            self.groups[at] = e;
            bit += STRIDE;
        }
    }

    /// The group an entry points to, creating one that inherits the entry's
    /// value when it holds a value.
    fn descend(e: &mut u32, groups: &mut Vec<u32>) -> usize {
        if *e & GROUP != 0 {
            return (*e & !GROUP) as usize;
        }
        let g = groups.len() / GROUP_LEN;
        assert!((g as u32) < GROUP, "LPM group index overflow");
        groups.extend(std::iter::repeat_n(*e, GROUP_LEN));
        *e = GROUP | g as u32;
        g
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> u32 {
        u32::from(s.parse::<std::net::Ipv4Addr>().unwrap())
    }
    fn v6(s: &str) -> u128 {
        u128::from(s.parse::<std::net::Ipv6Addr>().unwrap())
    }

    /// Reference: scan every route, keep the longest match (later wins on ties).
    fn naive<K: Key>(routes: &[(K, u8, u32)], key: K) -> Option<u32> {
        let mut best: Option<(u8, u32)> = None;
        for &(p, l, v) in routes {
            if key.truncate(l as u32) == p.truncate(l as u32) && best.is_none_or(|(bl, _)| l >= bl) {
                best = Some((l, v));
            }
        }
        best.map(|b| b.1)
    }

    #[test]
    fn ipv4_longest_match_wins() {
        let routes = [
            (v4("0.0.0.0"), 0, 1),
            (v4("10.0.0.0"), 8, 2),
            (v4("10.1.0.0"), 16, 3),
            (v4("10.1.2.0"), 24, 4),
            (v4("10.1.2.128"), 25, 5),
            (v4("10.1.2.129"), 32, 6),
            (v4("192.168.0.0"), 12, 7),
        ];
        let t16 = Lpm::<u32, 16>::build(&routes);
        let t24 = Lpm::<u32, 24>::build(&routes);
        for (addr, want) in [
            ("8.8.8.8", Some(1)),
            ("10.9.9.9", Some(2)),
            ("10.1.9.9", Some(3)),
            ("10.1.2.3", Some(4)),
            ("10.1.2.200", Some(5)),
            ("10.1.2.129", Some(6)),
            ("192.175.255.255", Some(7)),
            ("192.176.0.0", Some(1)),
        ] {
            assert_eq!(t16.lookup(v4(addr)), want, "{addr}");
            assert_eq!(t24.lookup(v4(addr)), want, "{addr} (24)");
        }
        let empty = Lpm::<u32>::build(&[]);
        assert_eq!(empty.lookup(v4("1.2.3.4")), None);
    }

    #[test]
    fn ipv6_longest_match_wins() {
        let routes = [
            (v6("::"), 0, 0),
            (v6("2001:db8::"), 32, 1),
            (v6("2001:db8:1::"), 48, 2),
            (v6("2001:db8:1:2::"), 64, 3),
            (v6("2001:db8:1:2::9"), 128, 4),
        ];
        let t = Lpm::<u128>::build(&routes);
        assert_eq!(t.lookup(v6("fe80::1")), Some(0));
        assert_eq!(t.lookup(v6("2001:db8:ffff::1")), Some(1));
        assert_eq!(t.lookup(v6("2001:db8:1:ffff::1")), Some(2));
        assert_eq!(t.lookup(v6("2001:db8:1:2::8")), Some(3));
        assert_eq!(t.lookup(v6("2001:db8:1:2::9")), Some(4));
        assert_eq!(Lpm::<u128>::build(&routes[1..]).lookup(v6("fe80::1")), None);
    }

    #[test]
    fn host_bits_beyond_the_length_are_ignored_and_later_duplicates_win() {
        let t = Lpm::<u32>::build(&[(v4("10.1.2.3"), 8, 1), (v4("10.0.0.0"), 8, 2)]);
        assert_eq!(t.lookup(v4("10.200.0.1")), Some(2));
    }

    /// Random tables against the naive reference, including prefixes that
    /// nest across level boundaries.
    #[test]
    fn matches_a_naive_scan() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..20 {
            let base = rnd() as u32 & 0xff00_0000;
            let routes: Vec<(u32, u8, u32)> = (0..200).map(|i| (base | (rnd() as u32 >> 8), (rnd() % 33) as u8, i)).collect();
            let t16 = Lpm::<u32, 16>::build(&routes);
            // The 64 MiB DIR-24-8 root is slow to build in a debug build: fewer rounds.
            let t24 = (round < 2).then(|| Lpm::<u32, 24>::build(&routes));
            for _ in 0..2000 {
                let k = if rnd() % 2 == 0 { base | (rnd() as u32 >> 8) } else { rnd() as u32 };
                let want = naive(&routes, k);
                assert_eq!(t16.lookup(k), want, "round {round} key {k:#x}");
                if let Some(t24) = &t24 {
                    assert_eq!(t24.lookup(k), want, "round {round} key {k:#x} (24)");
                }
            }
        }
        for _ in 0..10 {
            let base = (rnd() as u128) << 64;
            let routes: Vec<(u128, u8, u32)> = (0..100).map(|i| (base | (rnd() as u128) << 16, (rnd() % 129) as u8, i)).collect();
            let t = Lpm::<u128>::build(&routes);
            for _ in 0..1000 {
                let k = base | (rnd() as u128) << 16 | (rnd() as u128 & 0xffff);
                assert_eq!(t.lookup(k), naive(&routes, k));
            }
        }
    }
}
