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


def window(sock, secs, load_cmd=None):
    """Forwarding rate (packets/s) and iteration p99.9 (us) over one window."""
    load = subprocess.Popen(load_cmd, stdout=subprocess.PIPE, text=True) if load_cmd else None
    time.sleep(2)  # connections up
    w0, t0 = show(sock, "workers")[0]["rx_packets"], time.time()
    time.sleep(secs)
    w1, t1 = show(sock, "workers")[0]["rx_packets"], time.time()
    lat = [r for r in show(sock, "latency") if r["what"] == "iteration"][0]
    out = None
    if load:
        out = json.loads(load.communicate(timeout=secs + 60)[0].strip().splitlines()[-1])
    return (w1 - w0) / (t1 - t0), lat["quantiles"][4] * 1e6, out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--window", type=int, default=20, help="seconds per window")
    ap.add_argument("--dashboards", type=int, default=50)
    ap.add_argument("--qps", type=int, default=100)
    ap.add_argument("--soak", type=int, default=0, help="then SECONDS of load, sampling memory (600 for the figure)")
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
        off, on = [], []
        for r in range(a.rounds):
            f0, p0, _ = window(sock, a.window)
            f1, p1, lo = window(sock, a.window, load)
            off.append((f0, p0))
            on.append((f1, p1))
            print(f"round {r + 1}: without load {f0 / 1e6:.3f} Mpps, iteration p99.9 {p0:.1f} us; "
                  f"with load {f1 / 1e6:.3f} Mpps, p99.9 {p1:.1f} us; load: {json.dumps(lo)}")
        m = lambda xs, i: statistics.median(x[i] for x in xs)
        if a.rounds:
            print(f"RESULT forwarding without load {m(off, 0) / 1e6:.3f} Mpps, with load {m(on, 0) / 1e6:.3f} Mpps, "
                  f"ratio {m(on, 0) / m(off, 0):.4f}; iteration p99.9 {m(off, 1):.1f} us -> {m(on, 1):.1f} us "
                  f"(medians of {a.rounds} rounds of {a.window} s)")
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
