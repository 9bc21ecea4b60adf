#!/usr/bin/env python3
"""Two builds of enchufe-server side by side, same generator, same run.

    python3 bench/compare.py --old /tmp/old/bin --new bin [--seconds 5] [--rounds 3]
                             [--certs build/tls] [--idle 10000]

For a before/after figure: each row runs against the old server and the
new one in turn, `rounds` times, alternating so that the machine's noise
falls on both alike, and prints the median requests/s and p99 of each and
their ratio. The generator is the new build's enchufe-bench. Then the
server's RSS with 10,000 nearly idle keep-alive connections, old and new.
Every server it starts is stopped by its PID.
"""
import argparse
import json
import os
import signal
import re
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

# name, server options, bench options
ROWS = [
    ("keep-alive, 16 workers, c=16", ["--workers", "16"], ["-c", "16"]),
    ("keep-alive, 16 workers, c=50", ["--workers", "16"], ["-c", "50"]),
    ("keep-alive, 64 workers, c=50", ["--workers", "64"], ["-c", "50"]),
    ("keep-alive, --no-park 16 workers, c=16", ["--workers", "16", "--no-park"], ["-c", "16"]),
    ("keep-alive, --no-park 64 workers, c=50", ["--workers", "64", "--no-park"], ["-c", "50"]),
    ("keep-alive, 16 workers, c=256", ["--workers", "16"], ["-c", "256"]),
    ("per-conn, 16 workers, c=50", ["--workers", "16"], ["-c", "50", "--mode", "per-conn"]),
    ("pipelined 4 deep, 16 workers, c=16", ["--workers", "16"], ["-c", "16", "-P", "4"]),
    ("pipelined 16 deep, 16 workers, c=16", ["--workers", "16"], ["-c", "16", "-P", "16"]),
    ("pipelined 64 deep, 16 workers, c=16", ["--workers", "16"], ["-c", "16", "-P", "64"]),
    ("TLS keep-alive, 16 workers, c=50", ["--workers", "16", "TLS"], ["-c", "50", "TLS"]),
]

# "TLS" in a row's options stands for these, with the --certs directory.
TLS_SERVER = ["--tls-port", "0", "--tls-only", "--tls-cert", "{c}/server.pem",
              "--tls-key", "{c}/server.key"]
TLS_BENCH = ["--tls", "--tls-ca", "{c}/ca.pem", "--tls-server-name", "localhost"]


def expand(opts, tls, certs):
    out = []
    for o in opts:
        out += [t.format(c=certs) for t in tls] if o == "TLS" else [o]
    return out


def idle_rss_kib(gen, bin_dir, conns, seconds):
    """The server's RSS with `conns` keep-alive connections open and nearly
    idle (100 requests a second among them all)."""
    proc, port = harness.start_server(bin_dir, "--workers", "16")
    try:
        load = subprocess.Popen([gen, "--port", str(port), "-c", str(conns), "-t", "2",
                                 "-R", "100", "-d", str(seconds + 10), "--timeout", "30",
                                 "-q", "--json"], stdout=subprocess.DEVNULL)
        time.sleep(seconds + 5)
        with open(f"/proc/{proc.pid}/status") as f:
            rss = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
        load.wait(seconds + 60)
        return rss
    finally:
        harness.stop_server(proc)


def measure(gen, bin_dir, server_opts, bench_opts, seconds):
    proc, port = harness.start_server(bin_dir, *server_opts)
    try:
        cmd = [gen, "--port", str(port), "-d", str(seconds), "-t", "2", "--warmup", "1",
               "--json", "-q", *bench_opts]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
        r = json.loads(out)
        if sum(r["errors"].values()):
            print(f"  note: {sum(r['errors'].values())} errors in {bench_opts}", file=sys.stderr)
        return r["requests_per_s"], r["latency_us"]["p99"] / 1000
    finally:
        harness.stop_server(proc)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", required=True, help="directory of the old build's binaries")
    ap.add_argument("--new", default="bin", help="directory of the new build's binaries")
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", help="run only the rows whose name contains this")
    ap.add_argument("--certs", default="build/tls", help="tools/make_test_certs.sh's output")
    ap.add_argument("--idle", type=int, default=10000,
                    help="then the server's RSS with this many idle connections (0: skip)")
    args = ap.parse_args()
    certs = os.path.abspath(args.certs)
    gen = os.path.join(args.new, "enchufe-bench")
    print(f"  {'row':<40} {'old req/s':>10} {'new req/s':>10} {'new/old':>8} "
          f"{'old p99':>8} {'new p99':>8}")
    for name, server_opts, bench_opts in ROWS:
        if args.only and args.only not in name:
            continue
        server_opts = expand(server_opts, TLS_SERVER, certs)
        bench_opts = expand(bench_opts, TLS_BENCH, certs)
        old, new = [], []
        for _ in range(args.rounds):
            old.append(measure(gen, args.old, server_opts, bench_opts, args.seconds))
            new.append(measure(gen, args.new, server_opts, bench_opts, args.seconds))
        o = statistics.median(r for r, _ in old)
        n = statistics.median(r for r, _ in new)
        op = statistics.median(p for _, p in old)
        np_ = statistics.median(p for _, p in new)
        print(f"  {name:<40} {o:>10,.0f} {n:>10,.0f} {n / o:>8.2f} {op:>7.2f}ms {np_:>7.2f}ms",
              flush=True)
    if args.idle and not args.only:
        old = idle_rss_kib(gen, args.old, args.idle, args.seconds)
        new = idle_rss_kib(gen, args.new, args.idle, args.seconds)
        print(f"  {args.idle:,} idle keep-alive connections: server RSS old {old / 1024:.1f} MiB, "
              f"new {new / 1024:.1f} MiB, new/old {new / old:.2f}")


if __name__ == "__main__":
    main()
