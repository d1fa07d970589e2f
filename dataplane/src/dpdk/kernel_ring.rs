//! The kernel's packet rings behind a `net_af_packet` port. When the
//! appliance falls behind, the kernel drops frames in those rings, before
//! DPDK sees them, and DPDK 22.11's af_packet driver reports none of it
//! (`imissed` stays 0). The kernel counts them per socket
//! (`PACKET_STATISTICS`); this finds the driver's sockets and reads them.
//!
//! The sockets are found the way `ss -0p` finds them: the process's socket
//! inodes (`/proc/self/fd`) that `/proc/net/packet` lists as bound to the
//! interface. Reading the statistics resets them, so the reads are
//! accumulated here; nothing else in the process reads them.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The af_packet sockets of one port, and the drops read from them so far.
#[derive(Debug, Default)]
pub struct KernelRing {
    fds: Vec<RawFd>,
    drops: AtomicU64,
}

impl KernelRing {
    /// The packet sockets this process holds on interface `iface` (the
    /// driver's: one per queue pair, opened when the device was probed).
    pub fn find(iface: &str) -> KernelRing {
        let ifindex = std::fs::read_to_string(format!("/sys/class/net/{iface}/ifindex")).ok().and_then(|s| s.trim().parse::<u32>().ok());
        let Some(ifindex) = ifindex else {
            return KernelRing::default();
        };
        let table = std::fs::read_to_string("/proc/net/packet").unwrap_or_default();
        let inodes = bound_inodes(&table, ifindex);
        let mut fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let fd = e.file_name().to_str()?.parse::<RawFd>().ok()?;
                let target = std::fs::read_link(e.path()).ok()?;
                let inode = target.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?.parse::<u64>().ok()?;
                inodes.contains(&inode).then_some(fd)
            })
            .collect();
        fds.sort_unstable();
        KernelRing { fds, drops: AtomicU64::new(0) }
    }

    /// How many sockets were found.
    pub fn sockets(&self) -> usize {
        self.fds.len()
    }

    /// Every frame the kernel dropped in these rings so far.
    pub fn drops(&self) -> u64 {
        for &fd in &self.fds {
            let mut st = TpacketStats::default();
            let mut len = std::mem::size_of::<TpacketStats>() as libc::socklen_t;
            // SAFETY: `st` and `len` are valid out-pointers of the sizes given.
            let r = unsafe { libc::getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, (&mut st as *mut TpacketStats).cast(), &mut len) };
            if r == 0 {
                self.drops.fetch_add(st.tp_drops as u64, Relaxed);
            }
        }
        self.drops.load(Relaxed)
    }
}

const SOL_PACKET: libc::c_int = 263;
const PACKET_STATISTICS: libc::c_int = 6;

/// `struct tpacket_stats` (linux/if_packet.h); reading it resets it.
#[repr(C)]
#[derive(Default)]
struct TpacketStats {
    tp_packets: u32,
    tp_drops: u32,
}

/// The inodes of the sockets `/proc/net/packet` lists as bound to
/// `ifindex`. Columns: sk RefCnt Type Proto Iface R Rmem User Inode.
fn bound_inodes(table: &str, ifindex: u32) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 9 && f[4].parse::<u32>().ok()? == ifindex).then(|| f[8].parse::<u64>().ok())?
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_packet_table_is_read_by_interface() {
        let table = "sk       RefCnt Type Proto  Iface R Rmem   User   Inode\n\
                     0000000000000000 3      3    0003   7     1 0      0      5501\n\
                     0000000000000000 3      3    0003   2     1 0      0      5502\n\
                     0000000000000000 3      3    0003   7     1 0      0      5503\n\
                     garbage\n";
        assert_eq!(bound_inodes(table, 7), vec![5501, 5503]);
        assert_eq!(bound_inodes(table, 3), Vec::<u64>::new());
        assert_eq!(bound_inodes("", 7), Vec::<u64>::new());
    }

    #[test]
    fn our_own_packet_socket_is_found_and_read() {
        // SAFETY: a raw packet socket (needs CAP_NET_RAW), closed below.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, (libc::ETH_P_ALL as u16).to_be() as i32) };
        if fd < 0 {
            eprintln!("SKIPPED our_own_packet_socket_is_found_and_read: needs CAP_NET_RAW for an AF_PACKET socket");
            return;
        }
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = 1; // lo
                             // SAFETY: a valid sockaddr_ll of the size given.
        let r = unsafe { libc::bind(fd, (&sll as *const libc::sockaddr_ll).cast(), std::mem::size_of::<libc::sockaddr_ll>() as u32) };
        assert_eq!(r, 0);
        let ring = KernelRing::find("lo");
        assert!(ring.fds.contains(&fd), "found {:?}, ours is {fd}", ring.fds);
        assert_eq!(ring.drops(), 0);
        // SAFETY: our socket.
        unsafe { libc::close(fd) };
        assert_eq!(KernelRing::find("no-such-if0").sockets(), 0);
    }
}
