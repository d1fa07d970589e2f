#!/usr/bin/env python3
"""Builds the demo's LAN traffic: a mixed capture between two sites.

    scripts/demo-capture.py OUT.pcap [--source tests/captures/lab-traffic.pcap]

The source is a capture of real clients and servers (scripts/lab-traffic.sh:
web over HTTP and TLS, QUIC, DNS, SSH, databases, a SIP call). Its client
moves to site A (10.1.0.9) and its servers to site B (10.2.0.9, 10.2.0.8):
addresses are rewritten in the headers and in the payloads that carry them
(SIP/SDP text, DNS answers), and every checksum is recomputed. Two flows are
added, interleaved with the rest: the SIP call's RTP media (20 ms G.711
frames both ways) and a bulk download (an HTTP GET to dl.dropbox.com answered
by 1400-byte segments). Deterministic: the same input gives the same bytes.
"""
import argparse
import struct
import sys

A_CLIENT, B_SERVER, B_SERVER2 = "10.1.0.9", "10.2.0.9", "10.2.0.8"
MAP = {"10.9.0.1": A_CLIENT, "10.9.0.2": B_SERVER, "10.9.0.3": B_SERVER2}


def ip4(s):
    return bytes(int(x) for x in s.split("."))


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def read_pcap(path):
    d = open(path, "rb").read()
    magic = struct.unpack("<I", d[:4])[0]
    if magic not in (0xA1B2C3D4, 0xA1B23C4D):
        sys.exit(f"{path}: not a little-endian pcap file")
    if struct.unpack("<I", d[20:24])[0] != 1:
        sys.exit(f"{path}: not an Ethernet capture")
    off, out = 24, []
    while off + 16 <= len(d):
        sec, frac, incl, _ = struct.unpack("<IIII", d[off:off + 16])
        out.append(d[off + 16:off + 16 + incl])
        off += 16 + incl
    return out


def fix_ip(pkt):
    """Recomputes the IPv4 header checksum and the TCP/UDP checksum."""
    p = bytearray(pkt)
    ihl = (p[0] & 15) * 4
    total = struct.unpack("!H", p[2:4])[0]
    p[10:12] = b"\0\0"
    p[10:12] = struct.pack("!H", csum(bytes(p[:ihl])))
    proto = p[9]
    l4 = p[ihl:total]
    pseudo = p[12:20] + struct.pack("!BBH", 0, proto, len(l4))
    if proto == 6 and len(l4) >= 20:
        l4[16:18] = b"\0\0"
        l4[16:18] = struct.pack("!H", csum(bytes(pseudo + l4)))
    elif proto == 17 and len(l4) >= 8:
        l4[6:8] = b"\0\0"
        c = csum(bytes(pseudo + l4))
        l4[6:8] = struct.pack("!H", c or 0xFFFF)
    p[ihl:total] = l4
    return bytes(p)


def rewrite(ip):
    """Moves one IPv4 packet (no Ethernet header) to the demo's addresses."""
    p = bytearray(ip)
    ihl = (p[0] & 15) * 4
    for old, new in MAP.items():
        ob, nb = ip4(old), ip4(new)
        for o in (12, 16):
            if p[o:o + 4] == ob:
                p[o:o + 4] = nb
    body = bytes(p[ihl:])
    for old, new in MAP.items():
        body = body.replace(old.encode(), new.encode())  # SIP/SDP text (same length)
        body = body.replace(ip4(old), ip4(new))          # DNS answers
    p[ihl:] = body
    return fix_ip(bytes(p))


def udp(src, dst, sport, dport, payload, ident):
    l4 = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0xB8, 20 + len(l4), ident & 0xFFFF, 0x4000, 64, 17, 0, ip4(src), ip4(dst))
    return fix_ip(hdr + l4)


def tcp(src, dst, sport, dport, seq, ack, flags, payload, ident):
    l4 = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, 65535, 0, 0) + payload
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), ident & 0xFFFF, 0x4000, 64, 6, 0, ip4(src), ip4(dst))
    return fix_ip(hdr + l4)


def rtp_stream(n):
    """The SIP call's media: G.711 frames both ways on the ports its SDP gave."""
    out = []
    for i in range(n):
        for (src, dst, ssrc) in ((A_CLIENT, B_SERVER, 0x11111111), (B_SERVER, A_CLIENT, 0x22222222)):
            hdr = struct.pack("!BBHII", 0x80, 0, (1000 + i) & 0xFFFF, 160 * i, ssrc)
            out.append(udp(src, dst, 6000, 6000, hdr + bytes([0xD5]) * 160, i))
    return out


def bulk_download(segments):
    """An HTTP download: handshake, GET, `segments` full-size segments with ACKs, FIN."""
    c, s, cp, sp = A_CLIENT, B_SERVER, 41000, 80
    cs, ss = 1000, 50000
    out = [
        tcp(c, s, cp, sp, cs, 0, 0x02, b"", 1),
        tcp(s, c, sp, cp, ss, cs + 1, 0x12, b"", 1),
        tcp(c, s, cp, sp, cs + 1, ss + 1, 0x10, b"", 2),
    ]
    get = b"GET /s/backup-2026.tar HTTP/1.1\r\nHost: dl.dropbox.com\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n"
    out.append(tcp(c, s, cp, sp, cs + 1, ss + 1, 0x18, get, 3))
    cs += 1 + len(get)
    ss += 1
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-tar\r\nContent-Length: %d\r\n\r\n" % (segments * 1400)
    body = head + bytes((i * 7) & 0xFF for i in range(segments * 1400))
    for k in range((len(body) + 1399) // 1400):
        chunk = body[k * 1400:(k + 1) * 1400]
        out.append(tcp(s, c, sp, cp, ss, cs, 0x10, chunk, 100 + k))
        ss += len(chunk)
        if k % 2 == 1:
            out.append(tcp(c, s, cp, sp, cs, ss, 0x10, b"", 10 + k))
    out.append(tcp(s, c, sp, cp, ss, cs, 0x11, b"", 9000))
    out.append(tcp(c, s, cp, sp, cs, ss + 1, 0x11, b"", 9001))
    out.append(tcp(s, c, sp, cp, ss + 1, cs + 1, 0x10, b"", 9002))
    return out


def interleave(base, *extra):
    """Spreads each (start, list) of extra evenly through base from index
    `start` of base on, keeping every order."""
    tagged = [(i, 0, p) for i, p in enumerate(base)]
    for n, (start, lst) in enumerate(extra, 1):
        span = len(base) - start
        tagged += [(start + (i + 0.5) * span / max(len(lst), 1), n, p) for i, p in enumerate(lst)]
    tagged.sort(key=lambda t: (t[0], t[1]))
    return [p for _, _, p in tagged]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--source", default="tests/captures/lab-traffic.pcap")
    ap.add_argument("--rtp", type=int, default=400, help="RTP frames each way (default 400)")
    ap.add_argument("--bulk", type=int, default=900, help="1400-byte segments of the download (default 900)")
    a = ap.parse_args()
    base, big = [], 0
    for f in read_pcap(a.source):
        if len(f) > 1514:
            big += 1  # coalesced by the capturing host's offloads: never on a 1500-byte wire
        elif len(f) >= 34 and f[12:14] == b"\x08\x00":
            base.append(rewrite(f[14:]))
    # The call's media follows its signalling (the last SDP in the source).
    sdp = max((i for i, p in enumerate(base) if b"m=audio" in p), default=0)
    pkts = interleave(base, (sdp + 1, rtp_stream(a.rtp)), (0, bulk_download(a.bulk)))
    # ...by at least 30 other packets (10 ms at 3000 pps), so that the
    # answer has crossed the tunnel before the first media packet, as in a
    # real call (DPI learns the media ports from the SDP).
    j = max(i for i, p in enumerate(pkts) if b"m=audio" in p)
    media = lambda p: p[9] == 17 and 6000 in struct.unpack("!HH", p[20:24])
    other = [i for i in range(j + 1, len(pkts)) if not media(pkts[i])]
    floor = other[min(29, len(other) - 1)] + 0.5
    keyed = [(max(i, floor) if i > j and media(p) else i, i, p) for i, p in enumerate(pkts)]
    pkts = [p for _, _, p in sorted(keyed, key=lambda t: (t[0], t[1]))]
    eth = bytes.fromhex("020000000002" "020000000001" "0800")
    with open(a.out, "wb") as o:
        o.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, p in enumerate(pkts):
            fr = eth + p
            o.write(struct.pack("<IIII", 1764115200 + i // 1000, (i % 1000) * 1000, len(fr), len(fr)))
            o.write(fr)
    print(f"{a.out}: {len(pkts)} packets ({len(base)} from {a.source} ({big} offload-coalesced frames over 1514 bytes left out), "
          f"{2 * a.rtp} RTP, bulk download of {a.bulk} segments)")


if __name__ == "__main__":
    main()
