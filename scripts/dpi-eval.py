#!/usr/bin/env python3
"""Scores `patronus classify` against nDPI's verdicts in ../shared/corpora/ndpi-dev.

    scripts/dpi-eval.py [--corpus DIR] [--patronus BIN] [--min-app PCT] [--min-cat PCT]

Rules (the corpus README): only flows nDPI labels with confidence DPI count;
the application is the part after the dot of nDPI's Master.App (else the
master), compared with ours through docs/ndpi-names.tsv; the category is
compared separately. Prints a table per capture and overall. Exits 77
(skipped) when the corpus is absent, 1 when a minimum is not met.
"""
import argparse, collections, csv, os, subprocess, sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ap = argparse.ArgumentParser()
ap.add_argument("--corpus", default=os.path.join(root, "..", "shared", "corpora", "ndpi-dev"))
ap.add_argument("--patronus", default=os.path.join(root, "target", "release", "patronus"))
ap.add_argument("--min-app", type=float, default=None)
ap.add_argument("--min-cat", type=float, default=None)
ap.add_argument("-v", "--verbose", action="store_true", help="list every disagreement")
a = ap.parse_args()
tsv = os.path.join(a.corpus, "flows.tsv")
if not os.path.exists(tsv):
    print(f"dpi-eval: SKIPPED: {tsv} not found (the shared corpora are not on this machine)")
    sys.exit(77)

names = {}
for line in open(os.path.join(root, "docs", "ndpi-names.tsv")):
    if line.startswith("#") or not line.strip():
        continue
    k, v = line.rstrip("\n").split("\t")
    names[k.lower()] = v.lower()

def app_of(proto):
    app = proto.split(".", 1)[1] if "." in proto else proto
    return names.get("app:" + app.lower(), app.lower())

def cat_of(cat, proto):
    c = cat.split("/")[0].lower()
    app = (proto.split(".", 1)[1] if "." in proto else proto).lower()
    return names.get(f"cat:{c}@{app}", names.get("cat:" + c, c))

def ends(a, b):
    return tuple(sorted([a, b]))

truth = collections.defaultdict(list)
for row in csv.DictReader(open(tsv), delimiter="\t"):
    if row["confidence"] != "DPI":
        continue
    truth[row["pcap"]].append(row)

per = []
tot = collections.Counter()
for pcap in sorted(truth):
    out = subprocess.run([a.patronus, "classify", "--format", "tsv", "--signatures", os.path.join(root, "conf", "signatures.toml"),
                          os.path.join(a.corpus, pcap)], capture_output=True, text=True)
    if out.returncode != 0:
        print(f"dpi-eval: {pcap}: patronus failed: {out.stderr.strip()}")
        sys.exit(1)
    ours = {}
    for r in csv.DictReader(out.stdout.splitlines(), delimiter="\t"):
        ours.setdefault((r["proto"], ends(r["client"], r["server"])), r)
    c = collections.Counter()
    for t in truth[pcap]:
        key = (t["l4"] if t["l4"] in ("TCP", "UDP") else t["l4"], ends(t["src"], t["dst"]))
        o = ours.get(key)
        c["flows"] += 1
        if o is None:
            c["missing"] += 1
            if a.verbose:
                print(f"  {pcap}: missing {key}")
            continue
        app_ok = o["app"].lower() == app_of(t["proto"]) and o["basis"] != "port-hint"
        cat_ok = o["category"].lower() == cat_of(t["category"], t["proto"])
        c["app"] += app_ok
        c["cat"] += cat_ok
        if a.verbose and not (app_ok and cat_ok):
            print(f"  {pcap}: {t['l4']} {t['src']} {t['dst']}: nDPI {t['proto']} {t['category']} {t['host_sni']} | ours {o['app']} {o['category']} {o['basis']} {o['host']}")
    per.append((pcap, c))
    tot.update(c)

print(f"{'capture':<28} {'flows':>5} {'app':>6} {'cat':>6} {'missing':>7}")
for pcap, c in per:
    print(f"{pcap:<28} {c['flows']:>5} {100*c['app']/c['flows']:>5.1f}% {100*c['cat']/c['flows']:>5.1f}% {c['missing']:>7}")
app_pct = 100 * tot["app"] / tot["flows"]
cat_pct = 100 * tot["cat"] / tot["flows"]
print(f"{'overall':<28} {tot['flows']:>5} {app_pct:>5.1f}% {cat_pct:>5.1f}% {tot['missing']:>7}")
fail = (a.min_app is not None and app_pct < a.min_app) or (a.min_cat is not None and cat_pct < a.min_cat)
sys.exit(1 if fail else 0)
