"""The siege rows of `make bench` (run.py calls siege_rows): good clients
beside 1,000 hostile connections of each kind.

For each kind, a fresh enchufe-server (16 workers, a port in clear and a
TLS port) is besieged by enchufe-bench --hostile KIND:1000 while the
same run's good clients, each request on a new connection (per-conn, 4
at a time), measure what a new client meets: their rate and p99, against
a row with no hostile connection at all, on the same port. The kinds
that need TLS (half-handshake, tls-stall) and TLS variants of the others
run against the TLS port. The server's RSS is read at the end of each
row, with the hostile connections still open. Every process is stopped
by its PID.
"""
import json
import os
import subprocess

import harness
import tls_bench

HOSTILE = 1000
GOOD = 4

# (kind or None, over TLS)
ROWS = [(None, False), ("silent", False), ("slowloris", False), ("header-dribble", False),
        ("content-dribble", False), ("non-reader", False),
        (None, True), ("silent", True), ("half-handshake", True), ("tls-stall", True),
        ("slowloris", True), ("non-reader", True)]


def row_name(kind, tls):
    port = "TLS port" if tls else "port in clear"
    return f"good clients (per-conn), {HOSTILE} {kind}, {port}" if kind else \
        f"good clients (per-conn), no hostile, {port}"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def siege_rows(run, bin_dir, certs):
    for kind, tls in ROWS:
        proc, clear, tls_port = harness.start_with_tls(bin_dir, certs, "--workers", "16")
        try:
            cmd = [os.path.join(bin_dir, "enchufe-bench"), "--port", str(tls_port if tls else clear),
                   "--mode", "per-conn", "-c", str(GOOD), "-t", "1", "-d", str(run.s),
                   "--warmup", "1", "--timeout", "5", "--json", "-q"]
            if tls:
                cmd += tls_bench.tls_args(certs)
            if kind:
                cmd += ["--hostile", f"{kind}:{HOSTILE}"]
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=run.s + 120)
            if not out.stdout:
                raise SystemExit(f"enchufe-bench failed: {' '.join(cmd)}\n{out.stderr}")
            r = json.loads(out.stdout)
            run.extra[f"rss_kib, {row_name(kind, tls)}"] = rss_kib(proc.pid)
            run.add(row_name(kind, tls), r, "enchufe", "siege")
        finally:
            proc.terminate()
            proc.wait(60)


def siege_ratios(run):
    """(value, what, target): each kind's good-client rate against none,
    and its p99 against the bound."""
    out = []
    for kind, tls in ROWS:
        if not kind:
            continue
        base, r = run.get(row_name(None, tls)), run.get(row_name(kind, tls))
        if not base or not r:
            continue
        bound = 100 if tls else 50
        out.append((r["requests_per_s"] / base["requests_per_s"],
                    f"good clients' rate with {HOSTILE} {kind} / none "
                    f"({'TLS' if tls else 'clear'})", "the hostile cost nothing: ~1"))
        out.append((r["p99_us"] / 1000, f"good clients' p99 ms with {HOSTILE} {kind} "
                    f"({'TLS' if tls else 'clear'}), {r['errors']} errors",
                    f"< {bound} ms, 0 errors"))
    return out


def print_siege(run):
    print(f"\n  besieged ({HOSTILE} hostile connections of a kind, 16 workers; good clients "
          f"per-conn, {GOOD} at a time)")
    for kind, tls in ROWS:
        r = run.get(row_name(kind, tls))
        if not r:
            continue
        h = r["raw"].get("hostile", {}).get(kind, {})
        rss = run.extra.get(f"rss_kib, {row_name(kind, tls)}")
        held = f", {h.get('open')} held, {h.get('closed_by_server')} closed by the server" \
            if kind else ""
        print(f"    {kind or 'none':<16} {'TLS' if tls else 'clear':<6} "
              f"{r['requests_per_s']:>9,.0f} req/s  p99 {r['p99_us'] / 1000:7.2f} ms  "
              f"{r['errors']} errors{held}, server RSS {rss / 1024 if rss else 0:.1f} MiB")
