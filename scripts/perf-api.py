#!/usr/bin/env python3
"""The management API's cost to forwarding (docs/PERFORMANCE.md, "API").

One appliance (`patronus run`) forwards between two net_null ports on one
worker core (lcore 1 on CPU 1); the control thread and the API server share
CPU 0 with the load. Windows of --window seconds alternate: without load,
then with --dashboards subscribed dashboards (figures and events over
WebSocket, as the page does) and --qps GraphQL queries a second
(control/examples/api_load.rs). Per window: the worker's forwarding rate
(packets received, from `show workers`) and its loop iteration p99.9 (the
last 5-10 s, `show latency`). Then the median of each kind, and the ratio.
The two vCPUs of a small VM are often two hyperthreads of one core, so any
work on CPU 0 slows the worker on CPU 1 a little. To tell the API's cost
from that, each round has a third window: a plain busy loop on CPU 0 using
the same share of it as the API load did (measured from /proc/stat), with
no API traffic at all (--no-neutral leaves it out).
With --soak SECONDS, one long loaded run follows, sampling the appliance's
resident memory every 10 s (bounded memory).

  scripts/perf-api.py [--rounds 4] [--window 20] [--dashboards 50] [--qps 100] [--soak 0]

Needs a release build (built if missing) and root for hugepages (else
--no-huge).
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/release/patronus")
LOAD = os.path.join(ROOT, "target/release/examples/api_load")
PORT = 19410


def cpu_model():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def show(sock, what):
    r = subprocess.run([BIN, "show", what, "--json", "--socket", sock], capture_output=True, text=True, timeout=20)
    return json.loads(r.stdout)[what]


def rss(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu0():
    """(busy, total) jiffies of CPU 0."""
    for line in open("/proc/stat"):
        if line.startswith("cpu0 "):
            v = [int(x) for x in line.split()[1:]]
            return sum(v) - v[3] - v[4], sum(v)
    return 0, 1


# A busy loop on CPU 0 with a duty cycle: busy DUTY of every millisecond.
SPIN = """import sys, time
duty, until = float(sys.argv[1]), time.time() + float(sys.argv[2])
while time.time() < until:
    t = time.perf_counter()
    while time.perf_counter() - t < duty * 1e-3:
        pass
    time.sleep(max(0.0, (1 - duty) * 1e-3))
print("{}")"""


def window(sock, secs, load_cmd=None):
    """Forwarding rate (packets/s), iteration p99.9 (us), the load's report
    and CPU 0's busy share over one window."""
    load = subprocess.Popen(load_cmd, stdout=subprocess.PIPE, text=True) if load_cmd else None
    time.sleep(2)  # connections up
    w0, t0, c0 = show(sock, "workers")[0]["rx_packets"], time.time(), cpu0()
    time.sleep(secs)
    w1, t1, c1 = show(sock, "workers")[0]["rx_packets"], time.time(), cpu0()
    lat = [r for r in show(sock, "latency") if r["what"] == "iteration"][0]
    out = None
    if load:
        out = json.loads(load.communicate(timeout=secs + 60)[0].strip().splitlines()[-1])
    busy = (c1[0] - c0[0]) / max(1, c1[1] - c0[1])
    return (w1 - w0) / (t1 - t0), lat["quantiles"][4] * 1e6, out, busy


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--window", type=int, default=20, help="seconds per window")
    ap.add_argument("--dashboards", type=int, default=50)
    ap.add_argument("--qps", type=int, default=100)
    ap.add_argument("--soak", type=int, default=0, help="then SECONDS of load, sampling memory (600 for the figure)")
    ap.add_argument("--no-neutral", action="store_true", help="no busy-loop window of the same CPU 0 share")
    a = ap.parse_args()
    if not (os.path.exists(BIN) and os.path.exists(LOAD)):
        subprocess.run(["cargo", "build", "--release", "-p", "patronus", "--bin", "patronus", "--example", "api_load"], cwd=ROOT, check=True)
    d = tempfile.mkdtemp(prefix="perf-api.")
    tok = subprocess.run([BIN, "api-token", "--name", "bench", "--role", "read", "--file", f"{d}/tokens"],
                         capture_output=True, text=True, check=True).stdout.strip()
    with open(f"{d}/token", "w") as f:
        f.write(tok)
    huge = os.geteuid() == 0 and int(open("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages").read()) >= 256
    sock = f"{d}/a.sock"
    with open(f"{d}/a.toml", "w") as f:
        f.write(f"""[eal]
main_lcore = 0
worker_lcores = [1]
memory_mb = 512
hugepages = {"true" if huge else "false"}
file_prefix = "perf-api"
log_level = "warning"
extra_args = ["--no-telemetry"]

[stats]
interval_s = 0

[control]
socket = "{sock}"

[api]
listen = "127.0.0.1:{PORT}"
tokens_file = "tokens"

[[port]]
name = "lan0"
device = "net_null0"
role = "lan"
forward = "wan0"

[[port]]
name = "wan0"
device = "net_null1"
role = "wan"
forward = "lan0"
""")
    app = subprocess.Popen(["taskset", "-c", "0,1", BIN, "run", "--config", f"{d}/a.toml"], stdout=open(f"{d}/run.log", "w"),
                           stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.1)
        time.sleep(3)
        load = ["taskset", "-c", "0", LOAD, "--addr", f"127.0.0.1:{PORT}", "--token-file", f"{d}/token",
                "--dashboards", str(a.dashboards), "--qps", str(a.qps), "--seconds", str(a.window + 1)]
        print(f"CPU: {cpu_model()}; flags: {' '.join(sorted(set(open('/proc/cpuinfo').read().split('flags')[1].split(':')[1].split(chr(10))[0].split()) & {'avx2', 'avx512f', 'aes', 'sse4_2'}))}")
        print(f"memory: {'2 MiB hugepages' if huge else '--no-huge'}; worker on CPU 1, control + API + load on CPU 0")
        off, on, spin = [], [], []
        for r in range(a.rounds):
            f0, p0, _, b0 = window(sock, a.window)
            f1, p1, lo, b1 = window(sock, a.window, load)
            off.append((f0, p0, b0))
            on.append((f1, p1, b1))
            line = (f"round {r + 1}: without load {f0 / 1e6:.3f} Mpps, iteration p99.9 {p0:.1f} us, CPU 0 {b0:.0%}; "
                    f"with load {f1 / 1e6:.3f} Mpps, p99.9 {p1:.1f} us, CPU 0 {b1:.0%}")
            if not a.no_neutral:
                duty = min(1.0, max(0.0, b1 - b0))
                cmd = ["taskset", "-c", "0", sys.executable, "-c", SPIN, str(duty), str(a.window + 1)]
                f2, p2, _, b2 = window(sock, a.window, cmd)
                spin.append((f2, p2, b2))
                line += f"; busy loop {f2 / 1e6:.3f} Mpps, p99.9 {p2:.1f} us, CPU 0 {b2:.0%}"
            print(f"{line}; load: {json.dumps(lo)}")
        m = lambda xs, i: statistics.median(x[i] for x in xs)
        if a.rounds:
            print(f"RESULT forwarding without load {m(off, 0) / 1e6:.3f} Mpps, with load {m(on, 0) / 1e6:.3f} Mpps, "
                  f"ratio {m(on, 0) / m(off, 0):.4f}; iteration p99.9 {m(off, 1):.1f} us -> {m(on, 1):.1f} us "
                  f"(medians of {a.rounds} rounds of {a.window} s)")
        if a.rounds >= 2:
            # Each round's two windows are adjacent: their ratio cancels the
            # VM's slow drift; the spread of those ratios is the noise floor.
            pr = sorted(o[0] / f[0] for o, f in zip(on, off))
            q = lambda p: pr[min(len(pr) - 1, int(p * len(pr)))]
            print(f"RESULT per-round ratios (with / without load): median {statistics.median(pr):.4f}, "
                  f"quartiles {q(0.25):.4f}-{q(0.75):.4f}, range {pr[0]:.4f}-{pr[-1]:.4f}")
        if spin:
            print(f"RESULT a busy loop of the same CPU 0 share ({m(spin, 2):.0%} against {m(on, 2):.0%} with the API load): "
                  f"{m(spin, 0) / 1e6:.3f} Mpps, ratio {m(spin, 0) / m(off, 0):.4f}; the API load against it: "
                  f"{m(on, 0) / m(spin, 0):.4f}")
        if a.soak:
            load[-1] = str(a.soak)
            p = subprocess.Popen(load, stdout=subprocess.PIPE, text=True)
            samples = []
            t0 = time.time()
            while p.poll() is None:
                samples.append((time.time() - t0, rss(app.pid)))
                time.sleep(10)
            out = p.communicate()[0].strip().splitlines()[-1]
            first = [s for t, s in samples if t < 60]
            last = [s for t, s in samples if t >= a.soak - 60]
            print(f"RESULT soak {a.soak} s: resident memory first minute {max(first) / 2**20:.1f} MiB, "
                  f"last minute {max(last) / 2**20:.1f} MiB, max {max(s for _, s in samples) / 2**20:.1f} MiB; load: {out}")
    finally:
        app.send_signal(2)
        try:
            app.wait(timeout=30)
        except subprocess.TimeoutExpired:
            app.kill()


if __name__ == "__main__":
    main()
