#!/usr/bin/env python3
"""A paced UDP stream and its receiver, for failover measurements.

  udpstream.py send DST_IP PORT --pps 1000 --seconds 10 [--size 200] [--tos 0] [--rtp]
  udpstream.py recv PORT --seconds 12

The receiver prints one JSON object: packets received, the largest gap
between two consecutive arrivals (ms) and when it began (seconds since
the first packet), every gap over 5 ms as [began_s, ms], sequence numbers
missing, and the wall-clock time of the first packet.
"""
import argparse
import json
import socket
import struct
import time


def send(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if a.tos:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, a.tos)
    if a.sport:
        s.bind(("0.0.0.0", a.sport))
    pad = b"\0" * max(0, a.size - 12)
    ssrc = 0x5A7E1234
    gap = 1.0 / a.pps
    start = time.monotonic()
    seq = 0
    while True:
        due = start + seq * gap
        now = time.monotonic()
        if now - start >= a.seconds:
            break
        if due > now:
            time.sleep(due - now)
        if a.rtp:
            # RTP v2, PCMU, 20 ms of audio per packet: what a VoIP call sends.
            hdr = struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, seq * 160, ssrc)
            s.sendto(hdr + struct.pack("!I", seq) + pad[: max(0, a.size - 16)], (a.dst, a.port))
        else:
            s.sendto(struct.pack("!Id", seq, time.time()) + pad, (a.dst, a.port))
        seq += 1
    print(json.dumps({"sent": seq}))


def recv(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind(("0.0.0.0", a.port))
    s.settimeout(0.2)
    end = time.monotonic() + a.seconds
    first = last = None
    first_wall = None
    gap, gap_at = 0.0, None
    gaps = []
    seen = set()
    n = 0
    while time.monotonic() < end:
        try:
            data = s.recv(65535)
        except socket.timeout:
            continue
        t = time.monotonic()
        if first is None:
            first, first_wall = t, time.time()
        if last is not None and t - last > gap:
            gap, gap_at = t - last, last - first
        if last is not None and t - last > 0.005:
            gaps.append([round(last - first, 3), round((t - last) * 1e3, 3)])
        last = t
        n += 1
        if len(data) >= 4:
            seen.add(struct.unpack("!I", data[:4])[0])
    top = max(seen) if seen else -1
    print(json.dumps({
        "received": n,
        "max_gap_ms": round(gap * 1e3, 3),
        "gap_began_s": None if gap_at is None else round(gap_at, 3),
        "gaps": gaps,
        "missing": top + 1 - len(seen),
        "first_wall": first_wall,
        "gap_began_wall": None if gap_at is None else first_wall + gap_at,
    }))


p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
sub = p.add_subparsers(dest="cmd", required=True)
ps = sub.add_parser("send")
ps.add_argument("dst")
ps.add_argument("port", type=int)
ps.add_argument("--pps", type=float, default=1000)
ps.add_argument("--seconds", type=float, default=10)
ps.add_argument("--size", type=int, default=200)
ps.add_argument("--tos", type=int, default=0)
ps.add_argument("--sport", type=int, default=0)
ps.add_argument("--rtp", action="store_true", help="RTP-framed payload (classified as VoIP)")
pr = sub.add_parser("recv")
pr.add_argument("port", type=int)
pr.add_argument("--seconds", type=float, default=12)
a = p.parse_args()
send(a) if a.cmd == "send" else recv(a)
