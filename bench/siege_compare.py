#!/usr/bin/env python3
"""Two builds of enchufe-server besieged side by side: good clients beside
hostile connections of every kind, at several counts.

    python3 bench/siege_compare.py --old /tmp/old/bin --new bin
                                   [--counts 16,64,1000] [--seconds 3] [--certs build/tls]

For each kind and count, a fresh server of each build (16 workers, a port
in clear and a TLS port) is besieged with the new build's enchufe-bench
--hostile KIND:N while good clients, each request on a new connection (4
at a time, a 2 s timeout each), measure what a new client meets. Prints
the good clients' answers, failures and p99 for old and new. The TLS
kinds, and TLS variants of the others, run against the TLS port. Every
server it starts is stopped by its PID.
"""
import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import tls_bench  # noqa: E402

# (kind, over TLS)
KINDS = [("silent", False), ("slowloris", False), ("header-dribble", False),
         ("content-dribble", False), ("non-reader", False), ("silent", True),
         ("half-handshake", True), ("tls-stall", True), ("slowloris", True), ("non-reader", True)]


def besiege(gen, bin_dir, certs, kind, count, tls, seconds):
    proc, clear, tls_port = harness.start_with_tls(bin_dir, certs, "--workers", "16")
    try:
        cmd = [gen, "--port", str(tls_port if tls else clear), "--mode", "per-conn", "-c", "4",
               "-t", "1", "-d", str(seconds), "--timeout", "2", "--json", "-q",
               "--hostile", f"{kind}:{count}"]
        if tls:
            cmd += tls_bench.tls_args(certs)
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 180)
        if not out.stdout:
            return None
        r = json.loads(out.stdout)
        return {"answers": r["requests"], "failed": sum(r["errors"].values()),
                "p99_ms": r["latency_us"]["p99"] / 1000}
    finally:
        proc.terminate()
        proc.wait(60)


def fmt(r):
    if not r:
        return f"{'(no run)':>28}"
    p99 = f"{r['p99_ms']:.1f}" if r["answers"] else "-"
    return f"{r['answers']:>8} {r['failed']:>7} {p99:>10}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", required=True, help="directory of the old build's binaries")
    ap.add_argument("--new", default="bin", help="directory of the new build's binaries")
    ap.add_argument("--counts", default="16,64,1000")
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--certs", default="build/tls")
    args = ap.parse_args()
    gen = os.path.join(args.new, "enchufe-bench")
    certs = os.path.abspath(args.certs)
    counts = [int(c) for c in args.counts.split(",")]
    print(f"  {'hostile':<28} {'old: answers failed p99 ms':>28} {'new: answers failed p99 ms':>28}")
    for kind, tls in KINDS:
        for n in counts:
            old = besiege(gen, args.old, certs, kind, n, tls, args.seconds)
            new = besiege(gen, args.new, certs, kind, n, tls, args.seconds)
            name = f"{n} {kind}{' (TLS)' if tls else ''}"
            print(f"  {name:<28} {fmt(old)} {fmt(new)}", flush=True)


if __name__ == "__main__":
    main()
