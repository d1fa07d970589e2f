#!/usr/bin/env python3
"""The two-site config, one source for both setups that run it.

Site A and site B join their LANs through a WireGuard tunnel over two WAN
paths: a private line "mpls" (dear, narrow, low latency) and an internet
link "inet" (cheap, wide). Calls go on mpls while it meets their SLA; bulk
goes on the cheapest path.

- The demo (scripts/demo.py): three DPDK processes joined by net_memif, no
  root. It imports this module: `site_config(demo_setup(...), peer_pub)`.
- The lab (scripts/lab.sh): two appliances in network namespaces on
  net_af_packet, with a routed middle. It runs this file:

    scripts/twosite.py lab --site a|b --peer-key KEY --lab NAME --dir DIR
                           [--probe-ms N] [--hold-down-s N] [--bfd] [--frr]

  and reads the config on standard output.

What differs between the two is data (a Setup); the config is written
in one place, `site_config`.
"""

import argparse
import os
import sys
from dataclasses import dataclass, field


@dataclass
class Wan:
    """One WAN link: the port, and the path over it to the other site."""
    port: str              # the port's name
    path: str              # the path's name
    device: str            # the DPDK device string
    address: str           # our address on the link, CIDR
    endpoint: str          # the other site's address for the tunnel on this path
    cost: int
    bandwidth_mbps: int
    route: tuple = None    # (prefix, via) when the other site is not on the link
    mtu: int = None
    qos_mbps: int = None   # shape the port to this rate
    bfd: str = None        # a [[bfd]] session that gates the path


@dataclass
class Setup:
    """What one site of one setup needs beyond the shared shape."""
    site: str              # "a" or "b"
    title: str             # the file's first comment line
    file_prefix: str
    socket: str
    metrics_listen: str
    lan_device: str
    lan_address: str       # CIDR
    far_lan: str           # the other site's LAN prefix
    wans: list             # [Wan, Wan]: mpls first, inet second
    probe_ms: int
    hold_down_s: int
    tunnel_mtu: int = None
    bulk_match: str = ""   # the bulk rule's match: a TOML line
    video: bool = False    # a rule for video on the widest path
    bfd: list = field(default_factory=list)  # [(name, peer, multihop, extra TOML lines)]
    workers: int = 1       # worker lcores 1..=N (beyond the CPUs, sharing them)
    api_tokens: str = None # [api] tokens_file (beside the config), if any

    @property
    def queues(self):
        """RX queues per port: two, or one more than the workers (the
        control thread needs a TX queue of its own, and an af_packet
        device has as many RX queues as TX queues, every one of them in
        the kernel's fanout)."""
        return max(2, self.workers + 1)

    @property
    def other(self):
        return "site-b" if self.site == "a" else "site-a"


def eal_workers(n):
    """`worker_lcores` for N workers on this machine: lcores 1..=N, those
    beyond the CPUs mapped onto them (`cpu_map`), so several workers fit
    on a small machine."""
    cpus = os.cpu_count() or 1
    lcores = list(range(1, n + 1))
    extra = [f"{l}@{l % cpus}" for l in lcores if l >= cpus]
    line = f"worker_lcores = {lcores}"
    return line + (f'\ncpu_map = "{",".join(extra)}"' if extra else "")


def site_config(s, peer_pub):
    """The TOML config of one site."""
    out = [f"""# {s.title}
[eal]
main_lcore = 0
{eal_workers(s.workers)}
memory_mb = {256 * s.workers}
hugepages = false
file_prefix = "{s.file_prefix}"
log_level = "warning"
extra_args = ["--no-telemetry"]

[worker]
poll_mode = "adaptive"

[stats]
interval_s = 0

[control]
socket = "{s.socket}"

# The dashboard, the GraphQL API and /metrics (loopback only).
[api]
listen = "{s.metrics_listen}"
{f'tokens_file = "{s.api_tokens}"' if s.api_tokens else "# tokens_file: without one the API is read-only"}

[site]
private_key_file = "{s.site}.key"

[dpi]
enabled = true

# The site's LAN.
[[port]]
name = "lan0"
device = "{s.lan_device}"
rx_queues = {s.queues}
role = "lan"
addresses = ["{s.lan_address}"]
"""]
    for w in s.wans:
        out.append(f"""
# WAN link "{w.path}".
[[port]]
name = "{w.port}"
device = "{w.device}"
rx_queues = {s.queues}
role = "wan"
addresses = ["{w.address}"]
""")
        if w.mtu:
            out.append(f"mtu = {w.mtu}\n")
        if w.qos_mbps:
            out.append(f"[port.qos]\nrate_mbps = {w.qos_mbps}\n")
    for w in s.wans:
        if w.route:
            out.append(f"""
[[route]]
prefix = "{w.route[0]}"
via = "{w.route[1]}"
""")
    out.append("""
# Over 1500-byte links keep the default tunnel MTU (1420): larger packets
# are answered with ICMP "fragmentation needed" (tunnel_mtu).
[tunnel]
listen_port = 51820
""")
    if s.tunnel_mtu:
        out.append(f"mtu = {s.tunnel_mtu}\n")
    mpls = s.wans[0]
    out.append(f"""
[[tunnel.peer]]
name = "{s.other}"
public_key = "{peer_pub}"
endpoint = "{mpls.endpoint}:51820"
allowed_ips = ["{s.far_lan}"]
persistent_keepalive = 5

[paths]
hold_down_s = {s.hold_down_s}
default_strategy = "lowest-latency"
""")
    for w in s.wans:
        out.append(f"""
[[path]]
name = "{w.path}"
peer = "{s.other}"
port = "{w.port}"
endpoint = "{w.endpoint}:51820"
cost = {w.cost}
bandwidth_mbps = {w.bandwidth_mbps}
probe_interval_ms = {s.probe_ms}
""")
        if w.bfd:
            out.append(f'bfd = "{w.bfd}"\n')
    out.append(f"""
# Calls on the private line while it meets their SLA.
[[policy]]
name = "voip"
priority = 10
category = ["voip"]
strategy = "preference"
prefer = ["{s.wans[0].path}", "{s.wans[1].path}"]
max_latency_ms = 30
max_loss_pct = 5
class = "realtime"

# Bulk transfers on the cheapest path.
[[policy]]
name = "bulk"
priority = 20
{s.bulk_match}
strategy = "least-cost"
class = "bulk"
""")
    if s.video:
        out.append("""
# Video on the widest path.
[[policy]]
name = "video"
priority = 30
category = ["video"]
strategy = "highest-bandwidth"
""")
    for name, peer, multihop, extra in s.bfd:
        out.append(f"""
[[bfd]]
name = "{name}"
peer = "{peer}"
multihop = {"true" if multihop else "false"}
min_tx_ms = 100
min_rx_ms = 100
{extra}""")
    return "".join(out)


def demo_setup(site, d, prefix, metrics_port, memif, workers=1):
    """The demo: net_memif ports (`memif(n, socket, role, site_port)` gives a
    device string), the WAN links on 192.168.1.0/30 and 192.168.2.0/30,
    1600-byte WAN frames so the tunnel passes the LAN's full 1500-byte
    packets, both WAN ports shaped."""
    a = site == "a"
    role = "server" if a else "client"  # the WAN links: A listens, B connects
    me, far = ("1", "2") if a else ("2", "1")
    wans = [
        Wan("mpls", "mpls", memif(1, f"{d}/mpls.sock", role, f"{site}-mpls"), f"192.168.1.{me}/30", f"192.168.1.{far}",
            cost=100, bandwidth_mbps=20, mtu=1600, qos_mbps=20),
        Wan("inet", "inet", memif(2, f"{d}/inet.sock", role, f"{site}-inet"), f"192.168.2.{me}/30", f"192.168.2.{far}",
            cost=10, bandwidth_mbps=50, mtu=1600, qos_mbps=50),
    ]
    return Setup(
        site=site,
        title=f"Patronus demo, site {site.upper()} (written by scripts/demo.py from scripts/twosite.py; see docs/OPERATIONS.md).",
        file_prefix=f"{prefix}-{site}",
        socket=f"{d}/{site}.sock",
        metrics_listen=f"127.0.0.1:{metrics_port}",
        lan_device=memif(0, f"{d}/lan-{site}.sock", "server", f"{site}-lan"),
        lan_address="10.1.0.1/24" if a else "10.2.0.1/24",
        far_lan="10.2.0.0/24" if a else "10.1.0.0/24",
        wans=wans,
        probe_ms=20,  # figures over the last 100 probes: 2 s
        hold_down_s=3,
        tunnel_mtu=1500,
        bulk_match='category = ["cloud", "filetransfer"]',
        video=True,
        workers=workers,
        api_tokens="api-tokens",
    )


def lab_setup(site, lab, lab_dir, probe_ms=100, hold_down_s=3, bfd=False, frr=False, workers=1):
    """The lab: net_af_packet ports on veths into namespaces, each WAN link
    routed through a middle namespace (10.1x1/24 and 10.1x2/24 for site A,
    10.2x1 and 10.2x2 for site B); optional multihop BFD per path, or
    single-hop BFD with FRR's bfdd as the mpls next hop."""
    a = site == "a"
    q = max(2, workers + 1)
    me1, me2, gw1, gw2, far1, far2 = (
        ("10.101.0.1", "10.102.0.1", "10.101.0.254", "10.102.0.254", "10.201.0.1", "10.202.0.1") if a else
        ("10.201.0.1", "10.202.0.1", "10.201.0.254", "10.202.0.254", "10.101.0.1", "10.102.0.1"))
    net = lambda ip: ip.rsplit(".", 1)[0] + ".0/24"
    gate1 = "mpls-bfd" if bfd else ("mpls-gw" if frr else None)
    wans = [
        Wan("wan1", "mpls", f"net_af_packet1,iface={site}-w1,qpairs={q}", f"{me1}/24", far1, cost=100, bandwidth_mbps=10,
            route=(net(far1), gw1), bfd=gate1),
        Wan("wan2", "inet", f"net_af_packet2,iface={site}-w2,qpairs={q}", f"{me2}/24", far2, cost=10, bandwidth_mbps=100,
            route=(net(far2), gw2), bfd="inet-bfd" if bfd else None),
    ]
    sessions = []
    if bfd:
        sessions += [("mpls-bfd", far1, True, ""), ("inet-bfd", far2, True, "")]
    if frr:
        sessions.append(("mpls-gw", gw1, False, "multiplier = 3\n"))
    return Setup(
        site=site,
        title=f"Patronus lab, site {site.upper()} (written by scripts/lab.sh from scripts/twosite.py).",
        file_prefix=f"{lab}-{site}",
        socket=f"{lab_dir}/{site}.sock",
        metrics_listen="127.0.0.1:9100",
        lan_device=f"net_af_packet0,iface={site}-lan,qpairs={q}",
        lan_address="10.1.0.1/24" if a else "10.2.0.1/24",
        far_lan="10.2.0.0/24" if a else "10.1.0.0/24",
        wans=wans,
        probe_ms=probe_ms,
        hold_down_s=hold_down_s,
        bulk_match='ports = ["5201"]',
        bfd=sessions,
        workers=workers,
        api_tokens="api-tokens",
    )


def main():
    p = argparse.ArgumentParser(description="Writes one site's config of the two-site lab (scripts/lab.sh) to standard output.")
    p.add_argument("setup", choices=["lab"], help="which setup (the demo imports this module instead)")
    p.add_argument("--site", required=True, choices=["a", "b"])
    p.add_argument("--peer-key", required=True, help="the other site's public key")
    p.add_argument("--lab", required=True, help="the lab's name (its DPDK file prefix)")
    p.add_argument("--dir", required=True, help="where the lab keeps configs, keys and sockets")
    p.add_argument("--probe-ms", type=int, default=100, help="SLA probe interval (default 100)")
    p.add_argument("--hold-down-s", type=int, default=3, help="failback hold-down (default 3)")
    p.add_argument("--bfd", action="store_true", help="a multihop BFD session per path, gating it")
    p.add_argument("--frr", action="store_true", help="single-hop BFD with FRR's bfdd as the mpls next hop")
    p.add_argument("--workers", type=int, default=1, help="workers per appliance (default 1; more share the CPUs)")
    a = p.parse_args()
    sys.stdout.write(site_config(lab_setup(a.site, a.lab, a.dir, a.probe_ms, a.hold_down_s, a.bfd, a.frr, a.workers), a.peer_key))


if __name__ == "__main__":
    main()
