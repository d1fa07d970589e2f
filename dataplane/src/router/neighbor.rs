//! Neighbour resolution (ARP and IPv6 ND) as a sans-IO state machine the
//! control thread drives, and the immutable table the workers read.
//!
//! The control thread feeds in what it learns (`learn`), packets that wait
//! for an address (`resolve`) and the time (`poll`); the cache answers with
//! what to send: solicitations, released packets, or packets to drop.
//! Entries are refreshed with a unicast probe once `reachable` has passed
//! and removed when `probes` of them go unanswered.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use super::fib::IfaceIdx;
use crate::wire::{EthernetAddress, Ipv4Address, Ipv6Address};

/// A neighbour: an interface and an address (IPv4 held IPv4-mapped).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct NeighborKey {
    pub iface: IfaceIdx,
    pub ip: u128,
}

const V4_MAPPED: u128 = 0xffff << 32;

impl NeighborKey {
    #[inline]
    pub fn v4(iface: IfaceIdx, a: Ipv4Address) -> Self {
        NeighborKey { iface, ip: V4_MAPPED | a.to_u32() as u128 }
    }
    #[inline]
    pub fn v6(iface: IfaceIdx, a: Ipv6Address) -> Self {
        NeighborKey { iface, ip: a.to_u128() }
    }
    pub fn from_ip(iface: IfaceIdx, ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => Self::v4(iface, a.into()),
            IpAddr::V6(a) => Self::v6(iface, a.into()),
        }
    }
    pub fn is_v4(&self) -> bool {
        self.ip >> 32 == 0xffff
    }
    pub fn ip(&self) -> IpAddr {
        if self.is_v4() {
            IpAddr::V4(Ipv4Addr::from(self.ip as u32))
        } else {
            IpAddr::V6(Ipv6Addr::from(self.ip))
        }
    }
}

#[derive(Clone, Copy, Default)]
struct Slot<V> {
    ip: u128,
    iface: IfaceIdx,
    used: bool,
    value: V,
}

/// Immutable open-addressing table of resolved neighbours: their MACs
/// (what the cache knows) or ready-made L2 rewrites (what workers use).
pub struct NeighborTable<V = EthernetAddress> {
    slots: Box<[Slot<V>]>,
    mask: usize,
    len: usize,
}

#[inline(always)]
fn hash(k: NeighborKey) -> usize {
    let x = (k.ip as u64) ^ ((k.ip >> 64) as u64) ^ ((k.iface as u64) << 48);
    (x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 29) as usize
}

impl<V: Copy + Default> NeighborTable<V> {
    pub fn empty() -> Self {
        Self::build(std::iter::empty())
    }

    /// A table holding `entries` (at most half full, so probes stay short).
    pub fn build(entries: impl IntoIterator<Item = (NeighborKey, V)>) -> Self {
        let entries: Vec<_> = entries.into_iter().collect();
        let cap = (entries.len() * 2).next_power_of_two().max(16);
        let mut slots = vec![Slot::default(); cap].into_boxed_slice();
        let mask = cap - 1;
        for (k, v) in &entries {
            let mut i = hash(*k) & mask;
            while slots[i].used && (slots[i].ip, slots[i].iface) != (k.ip, k.iface) {
                i = (i + 1) & mask;
            }
            slots[i] = Slot { ip: k.ip, iface: k.iface, used: true, value: *v };
        }
        NeighborTable { slots, mask, len: entries.len() }
    }

    /// Every entry, in table order.
    pub fn iter(&self) -> impl Iterator<Item = (NeighborKey, V)> + '_ {
        self.slots.iter().filter(|s| s.used).map(|s| (NeighborKey { iface: s.iface, ip: s.ip }, s.value))
    }

    #[inline(always)]
    pub fn get(&self, k: NeighborKey) -> Option<&V> {
        let mut i = hash(k) & self.mask;
        loop {
            let s = &self.slots[i];
            if !s.used {
                return None;
            }
            if s.ip == k.ip && s.iface == k.iface {
                return Some(&s.value);
            }
            i = (i + 1) & self.mask;
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Timers and limits of resolution.
#[derive(Clone, Copy, Debug)]
pub struct NeighborConf {
    /// How long a confirmed entry is trusted before it is probed.
    pub reachable: Duration,
    /// Time between solicitations.
    pub retrans: Duration,
    /// Solicitations before giving up on an address.
    pub probes: u32,
    /// Packets that may wait for one address.
    pub pending_max: usize,
}

impl Default for NeighborConf {
    fn default() -> Self {
        NeighborConf { reachable: Duration::from_secs(60), retrans: Duration::from_secs(1), probes: 3, pending_max: 16 }
    }
}

enum State<P> {
    /// Being resolved; packets wait.
    Incomplete {
        tries: u32,
        next: Instant,
        pending: VecDeque<P>,
    },
    Reachable {
        mac: EthernetAddress,
        confirmed: Instant,
    },
    /// Known but unconfirmed for too long; unicast probes in flight.
    Probe {
        mac: EthernetAddress,
        tries: u32,
        next: Instant,
    },
}

/// What `resolve` did with a packet.
#[derive(Debug)]
pub enum Resolve<P> {
    /// Already known (the worker's snapshot was older): send it now.
    Known(EthernetAddress, P),
    /// Queued behind a resolution already in progress.
    Queued,
    /// Queued; a new resolution starts: send a solicitation.
    Solicit,
    /// The queue for this address is full: drop the packet.
    Overflow(P),
}

/// Work for the control thread after `poll`.
#[derive(Debug)]
pub enum Action<P> {
    /// Send an ARP request / Neighbor Solicitation: broadcast/multicast
    /// when resolving, unicast to `unicast` when probing a known entry.
    Solicit { key: NeighborKey, unicast: Option<EthernetAddress> },
    /// Resolution failed: drop these.
    Unresolved { key: NeighborKey, pkts: Vec<P> },
}

/// The neighbour cache (control thread only).
pub struct NeighborCache<P> {
    map: HashMap<NeighborKey, State<P>>,
    conf: NeighborConf,
    changed: bool,
}

impl<P> NeighborCache<P> {
    pub fn new(conf: NeighborConf) -> Self {
        NeighborCache { map: HashMap::new(), conf, changed: false }
    }

    /// A packet for `key` whose address the worker did not have.
    pub fn resolve(&mut self, key: NeighborKey, pkt: P, now: Instant) -> Resolve<P> {
        match self.map.get_mut(&key) {
            Some(State::Reachable { mac, .. } | State::Probe { mac, .. }) => Resolve::Known(*mac, pkt),
            Some(State::Incomplete { pending, .. }) => {
                if pending.len() >= self.conf.pending_max {
                    Resolve::Overflow(pkt)
                } else {
                    pending.push_back(pkt);
                    Resolve::Queued
                }
            }
            None => {
                if self.conf.pending_max == 0 {
                    return Resolve::Overflow(pkt);
                }
                let pending = VecDeque::from([pkt]);
                self.map.insert(key, State::Incomplete { tries: 1, next: now + self.conf.retrans, pending });
                Resolve::Solicit
            }
        }
    }

    /// `key` is at `mac` (a reply, or a request from it). An unknown key
    /// is added only when `create`. Returns packets that were waiting.
    pub fn learn(&mut self, key: NeighborKey, mac: EthernetAddress, now: Instant, create: bool) -> Vec<P> {
        if !create && !self.map.contains_key(&key) {
            return Vec::new();
        }
        match self.map.insert(key, State::Reachable { mac, confirmed: now }) {
            Some(State::Incomplete { pending, .. }) => {
                self.changed = true;
                pending.into()
            }
            Some(State::Reachable { mac: old, .. } | State::Probe { mac: old, .. }) => {
                self.changed |= old != mac;
                Vec::new()
            }
            None => {
                self.changed = true;
                Vec::new()
            }
        }
    }

    /// Advances timers to `now`.
    pub fn poll(&mut self, now: Instant) -> Vec<Action<P>> {
        let conf = self.conf;
        let mut actions = Vec::new();
        let mut gone = Vec::new();
        for (key, st) in self.map.iter_mut() {
            match st {
                State::Incomplete { tries, next, .. } if now >= *next => {
                    if *tries >= conf.probes {
                        gone.push(*key);
                    } else {
                        *tries += 1;
                        *next = now + conf.retrans;
                        actions.push(Action::Solicit { key: *key, unicast: None });
                    }
                }
                State::Reachable { mac, confirmed } if now >= *confirmed + conf.reachable => {
                    let mac = *mac;
                    *st = State::Probe { mac, tries: 1, next: now + conf.retrans };
                    actions.push(Action::Solicit { key: *key, unicast: Some(mac) });
                }
                State::Probe { mac, tries, next } if now >= *next => {
                    if *tries >= conf.probes {
                        gone.push(*key);
                    } else {
                        *tries += 1;
                        *next = now + conf.retrans;
                        actions.push(Action::Solicit { key: *key, unicast: Some(*mac) });
                    }
                }
                _ => {}
            }
        }
        for key in gone {
            match self.map.remove(&key) {
                Some(State::Incomplete { pending, .. }) => actions.push(Action::Unresolved { key, pkts: pending.into() }),
                Some(_) => self.changed = true,
                None => {}
            }
        }
        actions
    }

    /// Applies new timers and limits (a reload); entries stay.
    pub fn set_conf(&mut self, conf: NeighborConf) {
        self.conf = conf;
    }

    /// Renumbers interfaces after a reload: `map(old)` is the interface's
    /// new index, or None if it is gone. Entries of vanished interfaces
    /// are removed; their waiting packets are returned.
    pub fn remap(&mut self, map: impl Fn(IfaceIdx) -> Option<IfaceIdx>) -> Vec<(NeighborKey, Vec<P>)> {
        let mut orphans = Vec::new();
        let old = std::mem::take(&mut self.map);
        for (key, st) in old {
            match map(key.iface) {
                Some(iface) => {
                    self.changed |= iface != key.iface;
                    self.map.insert(NeighborKey { iface, ..key }, st);
                }
                None => {
                    self.changed = true;
                    if let State::Incomplete { pending, .. } = st {
                        orphans.push((key, pending.into()));
                    }
                }
            }
        }
        orphans
    }

    /// Whether the resolved set changed since the last call.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// The resolved neighbours, for the workers.
    pub fn table(&self) -> NeighborTable {
        NeighborTable::build(self.map.iter().filter_map(|(k, st)| match st {
            State::Reachable { mac, .. } | State::Probe { mac, .. } => Some((*k, *mac)),
            State::Incomplete { .. } => None,
        }))
    }

    /// The resolved address of `key`.
    pub fn get(&self, key: NeighborKey) -> Option<EthernetAddress> {
        match self.map.get(&key)? {
            State::Reachable { mac, .. } | State::Probe { mac, .. } => Some(*mac),
            State::Incomplete { .. } => None,
        }
    }

    /// (key, address, state name) of every entry, for display.
    pub fn entries(&self) -> Vec<(NeighborKey, Option<EthernetAddress>, &'static str)> {
        let mut v: Vec<_> = self
            .map
            .iter()
            .map(|(k, st)| match st {
                State::Incomplete { .. } => (*k, None, "incomplete"),
                State::Reachable { mac, .. } => (*k, Some(*mac), "reachable"),
                State::Probe { mac, .. } => (*k, Some(*mac), "probe"),
            })
            .collect();
        v.sort_by_key(|e| (e.0.iface, e.0.ip));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 9]);
    const MAC2: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 10]);

    fn key(last: u8) -> NeighborKey {
        NeighborKey::v4(0, Ipv4Address::new(10, 0, 0, last))
    }

    fn conf() -> NeighborConf {
        NeighborConf { reachable: Duration::from_secs(30), retrans: Duration::from_secs(1), probes: 3, pending_max: 2 }
    }

    #[test]
    fn keys_keep_families_apart() {
        let v4 = NeighborKey::v4(1, Ipv4Address::new(10, 0, 0, 1));
        assert!(v4.is_v4());
        assert_eq!(v4.ip(), "10.0.0.1".parse::<IpAddr>().unwrap());
        let v6 = NeighborKey::v6(1, "fe80::1".parse::<Ipv6Addr>().unwrap().into());
        assert!(!v6.is_v4());
        assert_eq!(v6.ip(), "fe80::1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn table_finds_what_it_holds() {
        let entries: Vec<_> = (0..1000u32)
            .map(|i| (NeighborKey::v4((i % 3) as u16, Ipv4Address::from_u32(i)), EthernetAddress([2, 0, 0, 0, (i >> 8) as u8, i as u8])))
            .collect();
        let t = NeighborTable::build(entries.clone());
        assert_eq!(t.len(), 1000);
        for (k, mac) in &entries {
            assert_eq!(t.get(*k), Some(mac));
        }
        assert_eq!(t.get(NeighborKey::v4(1, Ipv4Address::from_u32(0))), None, "same address, other interface");
        assert_eq!(NeighborTable::<EthernetAddress>::empty().get(key(1)), None);
    }

    #[test]
    fn a_reload_renumbers_interfaces_and_keeps_what_was_learned() {
        let t0 = Instant::now();
        let mut c: NeighborCache<u32> = NeighborCache::new(conf());
        let on = |iface: u16, last: u8| NeighborKey::v4(iface, Ipv4Address::new(10, 0, 0, last));
        c.learn(on(0, 1), MAC, t0, true);
        c.learn(on(1, 2), MAC2, t0, true);
        c.resolve(on(2, 3), 42, t0);
        c.take_changed();
        // Interface 0 is now 1, interface 1 is gone, 2 stays.
        let orphans = c.remap(|i| match i {
            0 => Some(1),
            2 => Some(2),
            _ => None,
        });
        assert!(orphans.is_empty(), "the gone interface had nothing waiting");
        assert!(c.take_changed());
        assert_eq!(c.get(on(1, 1)), Some(MAC));
        assert_eq!(c.get(on(0, 1)), None);
        assert_eq!(c.get(on(1, 2)), None);
        assert!(matches!(c.resolve(on(2, 3), 43, t0), Resolve::Queued), "resolution in progress carried over");
        let orphans = c.remap(|_| None);
        assert_eq!(orphans.len(), 1);
        assert_eq!(orphans[0].1, vec![42, 43], "waiting packets come back to be counted");
        assert!(c.entries().is_empty());
    }

    #[test]
    fn resolution_queues_then_releases() {
        let t0 = Instant::now();
        let mut c: NeighborCache<u32> = NeighborCache::new(conf());
        assert!(matches!(c.resolve(key(2), 1, t0), Resolve::Solicit));
        assert!(matches!(c.resolve(key(2), 2, t0), Resolve::Queued));
        assert!(matches!(c.resolve(key(2), 3, t0), Resolve::Overflow(3)));
        assert!(c.table().is_empty());
        assert_eq!(c.learn(key(2), MAC, t0, false), vec![1, 2]);
        assert!(c.take_changed());
        assert_eq!(c.table().get(key(2)), Some(&MAC));
        assert!(matches!(c.resolve(key(2), 4, t0), Resolve::Known(MAC, 4)));
        // Unsolicited information about unknown hosts is not cached unless asked.
        assert!(c.learn(key(3), MAC, t0, false).is_empty());
        assert_eq!(c.get(key(3)), None);
        c.learn(key(3), MAC, t0, true);
        assert_eq!(c.get(key(3)), Some(MAC));
    }

    #[test]
    fn unanswered_resolution_retries_then_drops() {
        let t0 = Instant::now();
        let mut c: NeighborCache<u32> = NeighborCache::new(conf());
        c.resolve(key(2), 7, t0);
        assert!(c.poll(t0).is_empty(), "first solicitation went out with resolve");
        for s in 1..=2 {
            let a = c.poll(t0 + Duration::from_secs(s));
            assert!(matches!(a[..], [Action::Solicit { unicast: None, .. }]), "retry {s}: {a:?}");
        }
        let a = c.poll(t0 + Duration::from_secs(3));
        assert!(matches!(&a[..], [Action::Unresolved { pkts, .. }] if pkts == &vec![7]), "{a:?}");
        assert!(c.entries().is_empty());
    }

    #[test]
    fn stale_entries_are_probed_refreshed_or_removed() {
        let t0 = Instant::now();
        let mut c: NeighborCache<u32> = NeighborCache::new(conf());
        c.learn(key(2), MAC, t0, true);
        c.learn(key(3), MAC2, t0, true);
        c.take_changed();
        let t30 = t0 + Duration::from_secs(30);
        let a = c.poll(t30);
        assert_eq!(a.iter().filter(|x| matches!(x, Action::Solicit { unicast: Some(_), .. })).count(), 2);
        assert_eq!(c.table().len(), 2, "probing entries still forward");
        // key 2 answers; key 3 stays silent.
        c.learn(key(2), MAC, t30, false);
        assert!(!c.take_changed(), "same address: nothing to publish");
        for s in 1..=2 {
            c.poll(t30 + Duration::from_secs(s));
        }
        c.poll(t30 + Duration::from_secs(3));
        assert!(c.take_changed());
        assert_eq!(c.get(key(2)), Some(MAC));
        assert_eq!(c.get(key(3)), None);
        // A new address for a known neighbour is published.
        c.learn(key(2), MAC2, t30, false);
        assert!(c.take_changed());
        assert_eq!(c.table().get(key(2)), Some(&MAC2));
    }
}
