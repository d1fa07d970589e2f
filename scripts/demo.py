#!/usr/bin/env python3
"""The two-site demo: scripts/demo.sh builds Patronus and runs this.

Three DPDK processes on one machine, joined by net_memif (shared memory over
unix sockets; no NIC, no hugepages, no root):

  LAN hosts A --lan-a--> appliance A ==mpls==> appliance B <--lan-b-- LAN hosts B
  10.1.0.0/24            (site-a.toml) ==inet==> (site-b.toml)        10.2.0.0/24

`patronus replay` plays both sites' hosts: it replays a mixed capture (web,
TLS, QUIC, DNS, SSH, databases, a SIP call with its RTP, a bulk download),
each packet from the site that owns its source address. Both appliances
classify it (DPI), match policy, encrypt it into their WireGuard tunnel over
the path the policy picks (mpls or inet, by measured SLA), shape it (QoS) and
deliver it to the other site. A table per application and per path refreshes
every second; each appliance serves Prometheus metrics. At the end the
appliances stop, check that every mbuf came back, and a summary is printed
(and written as JSON with --summary-json).
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import twosite  # noqa: E402  (the two-site config, shared with scripts/lab.sh)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Drops that are part of the demo's design and not a fault. Empty: in this
# topology every packet is expected to arrive.
# `tunnel_keepalive` counts keepalives received: consumed, not lost.
EXPECTED_DROPS = {"tunnel_keepalive"}

MACS = {
    "a-lan": "02:00:00:00:0a:01", "a-mpls": "02:00:00:00:0a:02", "a-inet": "02:00:00:00:0a:03",
    "b-lan": "02:00:00:00:0b:01", "b-mpls": "02:00:00:00:0b:02", "b-inet": "02:00:00:00:0b:03",
    "hosts-a": "02:00:00:00:01:09", "hosts-b": "02:00:00:00:02:09",
}


def memif(n, sock, role, mac):
    return f"net_memif{n},role={role},socket={sock},socket-abstract=no,mac={mac}"


def site_config(d, site, peer_pub, metrics_port, prefix):
    """One site's config, from the two-site source the lab uses too."""
    def device(n, sock, role, port):
        return memif(n, sock, role, MACS[port])
    # DEMO_WORKERS=N: N workers per appliance (beyond the CPUs they share them).
    workers = int(os.environ.get("DEMO_WORKERS", "1"))
    return twosite.site_config(twosite.demo_setup(site, d, prefix, metrics_port, device, workers), peer_pub)


class Demo:
    def __init__(self, a):
        self.a = a
        self.bin = a.binary
        self.dir = a.dir
        self.procs = {}
        self.logs = {}

    def patronus(self, *args, check=True, capture=True):
        r = subprocess.run([self.bin, *args], capture_output=capture, text=True)
        if check and r.returncode != 0:
            raise SystemExit(f"demo: `patronus {' '.join(args)}` failed ({r.returncode}):\n{r.stderr}")
        return r

    def show(self, site, what):
        r = subprocess.run([self.bin, "show", what, "--json", "--socket", f"{self.dir}/{site}.sock"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            return None
        try:
            return json.loads(r.stdout)
        except ValueError:
            return None

    def start(self, name, args):
        log = open(f"{self.dir}/{name}.log", "w")
        self.logs[name] = f"{self.dir}/{name}.log"
        # Own sessions: Ctrl-C reaches the demo, which then stops them in order.
        self.procs[name] = subprocess.Popen([self.bin, *args], stdout=log, stderr=subprocess.STDOUT, cwd=self.dir,
                                            start_new_session=True)

    def alive(self, name):
        p = self.procs.get(name)
        return p is not None and p.poll() is None

    def fail(self, msg):
        for n, f in self.logs.items():
            try:
                tail = open(f).read().splitlines()[-15:]
            except OSError:
                tail = []
            print(f"--- {n} ({f}), last lines:\n" + "\n".join(tail), file=sys.stderr)
        self.stop_all()
        raise SystemExit(f"demo: {msg}")

    def stop_all(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in self.procs.values():
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()

    def setup(self):
        d = self.dir
        if os.path.isdir(d):
            shutil.rmtree(d)
        os.makedirs(d, mode=0o700)
        old = os.umask(0o077)
        pubs = {}
        for s in "ab":
            key = self.patronus("genkey").stdout
            with open(f"{d}/{s}.key", "w") as f:
                f.write(key)
            pubs[s] = subprocess.run([self.bin, "pubkey"], input=key, capture_output=True, text=True).stdout.strip()
        # The dashboards' admin token (both sites take the same file).
        self.token = self.patronus("api-token", "--name", "demo", "--role", "admin", "--file", f"{d}/api-tokens").stdout.strip()
        with open(f"{d}/api-token", "w") as f:
            f.write(self.token + "\n")
        os.umask(old)
        for s, peer, port in (("a", "b", self.a.metrics_a), ("b", "a", self.a.metrics_b)):
            with open(f"{d}/site-{s}.toml", "w") as f:
                f.write(site_config(d, s, pubs[peer], port, self.a.prefix))
            self.patronus("check", "--config", f"{d}/site-{s}.toml")
        r = subprocess.run([sys.executable, f"{ROOT}/scripts/demo-capture.py", f"{d}/lan.pcap",
                            "--source", f"{ROOT}/tests/captures/lab-traffic.pcap"], capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"demo: building the capture failed:\n{r.stderr}")
        print(f"demo: {r.stdout.strip()}")

    def wait_up(self, timeout=30):
        """Until the tunnel has a session and both paths are up at site A."""
        end = time.time() + timeout
        while time.time() < end:
            for n in ("site-a", "site-b"):
                if not self.alive(n):
                    self.fail(f"{n} exited during start-up")
            paths = self.show("a", "paths")
            peers = self.show("a", "peers")
            ps = (paths or {}).get("paths", {}).get("paths", [])
            # Up, and the probes lost while the links came up out of the window.
            if tunnel_up((peers or {}).get("peers")) and len(ps) == 2 \
                    and all(p.get("state") == "up" and p.get("loss_pct") == 0 for p in ps):
                return
            time.sleep(0.5)
        self.fail(f"the tunnel and both paths were not up within {timeout} s")

    def run(self):
        a, d = self.a, self.dir
        self.setup()
        print(f"demo: starting two appliances in {d} (logs: *.log there)")
        self.start("site-a", ["run", "--config", f"{d}/site-a.toml"])
        time.sleep(1.0)
        self.start("site-b", ["run", "--config", f"{d}/site-b.toml"])
        t0 = time.time()
        self.wait_up()
        # Drops while the links came up (a memif port sends before its peer
        # connects) are start-up, not the traffic's.
        self.startup_drops = {s: self.show(s, "drops") for s in "ab"}
        print(f"demo: tunnel up and both paths measured after {time.time() - t0:.1f} s")
        print(f"demo: dashboards: http://127.0.0.1:{a.metrics_a}/ (site A), http://127.0.0.1:{a.metrics_b}/ (site B); "
              f"admin token in {d}/api-token; metrics at /metrics on each")
        # The hosts come last: nothing they send meets a tunnel still coming up.
        replay = ["replay", "--pcap", f"{d}/lan.pcap", "--pps", str(a.pps), "--loops", str(a.loops),
                  "--duration", str(a.duration), "--file-prefix", f"{a.prefix}-hosts", "--cpu", "0",
                  "--summary", f"{d}/replay.json", "--drain", "2",
                  "--queues", str(max(2, int(os.environ.get("DEMO_WORKERS", "1")) + 1)),
                  "--port", memif(0, f"{d}/lan-a.sock", "client", MACS["hosts-a"]), "--hosts", "10.1.0.0/24", "--gateway", "10.1.0.1",
                  "--port", memif(1, f"{d}/lan-b.sock", "client", MACS["hosts-b"]), "--hosts", "10.2.0.0/24", "--gateway", "10.2.0.1"]
        self.start("hosts", replay)
        try:
            self.watch(sys.stdout.isatty() and not a.no_live, t0)
        except KeyboardInterrupt:
            print("\ndemo: stopping the traffic (Ctrl-C); the summary follows")
            self.procs["hosts"].send_signal(signal.SIGINT)
            self.procs["hosts"].wait(timeout=15)
        return self.finish(t0)

    def watch(self, live, t0):
        """Redraws the table every --interval until the hosts are done."""
        last = 0.0
        while self.alive("hosts"):
            if not (self.alive("site-a") and self.alive("site-b")):
                self.fail("an appliance exited while traffic ran")
            if time.time() - last >= self.a.interval:
                last = time.time()
                view = render(self.show("a", "apps"), self.show("a", "paths"), self.show("a", "peers"), time.time() - t0)
                view += (f"dashboards: http://127.0.0.1:{self.a.metrics_a}/ (site A), http://127.0.0.1:{self.a.metrics_b}/ (site B); "
                         f"token in {self.dir}/api-token\n")
                sys.stdout.write(("\x1b[H\x1b[2J" if live else "") + view)
                sys.stdout.flush()
            time.sleep(0.2)

    def finish(self, t0):
        a, d = self.a, self.dir
        if self.procs["hosts"].returncode != 0:
            self.fail(f"patronus replay failed ({self.procs['hosts'].returncode})")
        # Final state and metrics, then a clean stop of both appliances.
        final = {s: {w: self.show(s, w) for w in ("apps", "paths", "peers", "drops", "qos", "counters")} for s in "ab"}
        for s, port in (("a", a.metrics_a), ("b", a.metrics_b)):
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
                with open(f"{d}/site-{s}.metrics", "wb") as f:
                    f.write(body)
            except OSError as e:
                print(f"demo: site {s.upper()}'s metrics endpoint did not answer: {e}", file=sys.stderr)
        for n in ("site-a", "site-b"):
            self.procs[n].send_signal(signal.SIGINT)
        codes = {}
        for n in ("site-a", "site-b"):
            try:
                codes[n] = self.procs[n].wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.procs[n].kill()
                codes[n] = "killed"
        with open(f"{d}/replay.json") as f:
            replay_sum = json.load(f)
        s = summarize(final, replay_sum, codes, self.startup_drops)
        print(render(final["a"]["apps"], final["a"]["paths"], final["a"]["peers"], time.time() - t0))
        print(format_summary(s))
        if a.summary_json:
            with open(a.summary_json, "w") as f:
                json.dump(s, f, indent=2)
        return 0 if s["ok"] else 1


def tunnel_up(peers):
    return any(p.get("up") for p in ((peers or {}).get("peers") or []))


def human(n):
    for unit in ("", "k", "M", "G"):
        if abs(n) < 1000:
            return f"{n:.0f}{unit}" if unit == "" else f"{n:.1f}{unit}"
        n /= 1000.0
    return f"{n:.1f}T"


def render(apps, paths, peers, secs):
    """The live table: site A's applications, then its paths."""
    apps = (apps or {}).get("apps") or []
    paths = (paths or {}).get("paths") or {}
    out = [f"Patronus demo: site A, {secs:5.1f} s   (Ctrl-C ends it early)", ""]
    out.append(f"{'application':<12} {'category':<15} {'flows':>5} {'packets':>8} {'bytes':>8}  path (rule)")
    for ap in sorted(apps, key=lambda x: -x.get("bytes", 0)):
        # The appliance's own answer: the rule the application's flows take, and its path now.
        where = f"{ap.get('path') or '-'} ({ap.get('rule') or 'default'})"
        if ap.get("category") == "Tunnel":
            where = "the tunnel's own: handshakes, probes, keepalives"
        out.append(f"{ap.get('application', '?'):<12} {ap.get('category', '?'):<15} {ap.get('flows', 0):>5} "
                   f"{human(ap.get('packets', 0)):>8} {human(ap.get('bytes', 0)):>8}  {where}")
    out.append("")
    out.append(f"{'path':<5} {'state':<6} {'health':>6} {'rtt p50':>9} {'p99':>9} {'jitter':>9} {'loss':>6} {'sent':>8} {'received':>8}  rules")
    for p in paths.get("paths", []):
        rtt = p.get("rtt_ms") or {}
        out.append(f"{p.get('path', '?'):<5} {p.get('state', '?'):<6} {p.get('health', 0):>6} "
                   f"{fmt_ms(rtt.get('p50')):>9} {fmt_ms(rtt.get('p99')):>9} {fmt_ms(p.get('jitter_ms')):>9} {p.get('loss_pct', 0):>5.1f}% "
                   f"{human(p.get('tx_bytes', 0)):>8} {human(p.get('rx_bytes', 0)):>8}  {','.join(p.get('rules', [])) or '-'}")
    fo = paths.get("failovers_total", 0)
    state = "up" if tunnel_up((peers or {}).get("peers")) else "down"
    out.append(f"\ntunnel to site B: {state}; failovers: {fo}\n")
    return "\n".join(out) + "\n"


def fmt_ms(v):
    return "-" if v is None else f"{v:.2f} ms"


def drop_totals(reply, site):
    out = {}
    for row in ((reply or {}).get("drops") or []):
        k = f"site-{site}:{row['reason']}"
        out[k] = out.get(k, 0) + row["packets"]
    return out


def summarize(final, replay_sum, codes, startup):
    apps = {ap["application"]: {"flows": ap.get("flows", 0), "packets": ap.get("packets", 0), "bytes": ap.get("bytes", 0),
                                "category": ap.get("category")}
            for ap in ((final["a"]["apps"] or {}).get("apps") or [])}
    drops, before = {}, {}
    for s in "ab":
        before.update(drop_totals(startup[s], s))
        for k, n in drop_totals(final[s]["drops"], s).items():
            if n - before.get(k, 0):
                drops[k] = n - before.get(k, 0)
    unexpected = {k: v for k, v in drops.items() if k.split(":", 1)[1] not in EXPECTED_DROPS}
    sides = replay_sum["sides"]
    sent_a, sent_b = sides[0]["sent"], sides[1]["sent"]
    recv_a, recv_b = sides[0]["received"], sides[1]["received"]
    pa = ((final["a"]["paths"] or {}).get("paths") or {})
    paths = {p["path"]: {"state": p.get("state"), "tx_bytes": p.get("tx_bytes", 0), "rx_bytes": p.get("rx_bytes", 0),
                         "rules": p.get("rules", []), "rtt_p50_ms": (p.get("rtt_ms") or {}).get("p50")}
             for p in pa.get("paths", [])}
    up = lambda s: tunnel_up((final[s]["peers"] or {}).get("peers"))
    qos = {}
    for row in ((final["a"]["qos"] or {}).get("qos") or []):
        if row.get("sent_packets"):
            qos.setdefault(row["port"], {})[row["class"]] = {
                "packets": row["sent_packets"], "bytes": row["sent_bytes"],
                "drops": row.get("tail_drops", 0) + row.get("codel_drops", 0)}
    s = {
        "seconds": replay_sum["seconds"],
        "tunnel_up": up("a") and up("b"),
        "failovers": pa.get("failovers_total", 0),
        "sent": {"site-a": sent_a, "site-b": sent_b},
        "delivered": {"site-a->site-b": recv_b, "site-b->site-a": recv_a},
        "apps": apps,
        "paths": paths,
        "qos": qos,
        "drops": drops,
        "startup_drops": before,
        "unexpected_drops": unexpected,
        "exit_codes": codes,
    }
    s["ok"] = bool(s["tunnel_up"] and not unexpected and recv_b == sent_a and recv_a == sent_b
                   and all(c == 0 for c in codes.values()))
    return s


def format_summary(s):
    lines = [f"Summary after {s['seconds']:.1f} s of traffic:"]
    lines.append(f"  tunnel between the sites: {'up' if s['tunnel_up'] else 'DOWN'}")
    for d, (src, dst) in (("site-a->site-b", ("site-a", "site-b")), ("site-b->site-a", ("site-b", "site-a"))):
        lines.append(f"  {src} hosts sent {s['sent'][src]} packets, {s['delivered'][d]} arrived at {dst}")
    lines.append("  applications at site A: " + ", ".join(
        f"{k} {v['packets']}" for k, v in sorted(s["apps"].items(), key=lambda kv: -kv[1]["packets"])))
    lines.append("  paths: " + ", ".join(f"{k} tx {human(v['tx_bytes'])}B ({','.join(v['rules']) or 'default'})"
                                         for k, v in s["paths"].items()))
    lines.append("  QoS classes leaving site A: " + "; ".join(
        f"{port} " + ", ".join(f"{c} {v['packets']}" for c, v in sorted(cls.items(), key=lambda kv: -kv[1]["packets"]))
        for port, cls in sorted(s["qos"].items())))
    lines.append("  drops while traffic ran: " + (", ".join(f"{k} {v}" for k, v in s["drops"].items()) or "none")
                 + (f" (expected: {', '.join(sorted(EXPECTED_DROPS))})" if EXPECTED_DROPS else ""))
    if s["startup_drops"]:
        lines.append("  drops while the links came up: " + ", ".join(f"{k} {v}" for k, v in s["startup_drops"].items()))
    lines.append(f"  appliances exited with {s['exit_codes']} (0: clean, every mbuf back)")
    lines.append("  result: " + ("OK" if s["ok"] else "PROBLEM (see above and the logs)"))
    return "\n".join(lines)


def free_port(p):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the appliance binds
        try:
            s.bind(("127.0.0.1", p))
            return True
        except OSError:
            return False


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=30, help="seconds of traffic (default 30)")
    ap.add_argument("--loops", type=int, default=0, help="replay the capture this many times (default 0: until --duration)")
    ap.add_argument("--pps", type=int, default=2500, help="packets per second the hosts send (default 2500)")
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between table refreshes")
    ap.add_argument("--dir", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), f"patronus-demo-{os.getuid()}"),
                    help="working directory: configs, keys, sockets, logs (recreated)")
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/patronus"))
    ap.add_argument("--prefix", default="patronus-demo", help="DPDK --file-prefix stem of the three processes")
    ap.add_argument("--metrics-a", type=int, default=9181, help="site A's dashboard, API and metrics port (default 9181)")
    ap.add_argument("--metrics-b", type=int, default=9182, help="site B's (default 9182)")
    ap.add_argument("--no-live", action="store_true", help="print each table below the last instead of redrawing")
    ap.add_argument("--summary-json", help="also write the summary here")
    a = ap.parse_args()
    for p in (a.metrics_a, a.metrics_b):
        if not free_port(p):
            raise SystemExit(f"demo: 127.0.0.1:{p} is in use (another demo?); pick others with --metrics-a/--metrics-b")
    demo = Demo(a)

    def terminated(*_):
        raise KeyboardInterrupt  # stop the appliances and the hosts, as Ctrl-C does

    signal.signal(signal.SIGTERM, terminated)
    try:
        sys.exit(demo.run())
    except KeyboardInterrupt:
        demo.stop_all()
        sys.exit(130)


if __name__ == "__main__":
    main()
