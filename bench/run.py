#!/usr/bin/env python3
"""make bench: enchufe-server and Redis measured side by side, in one run.

Starts enchufe-server (app and echo) and redis-server on loopback, runs
the matrix with enchufe-bench, measures Redis PING with both
redis-benchmark and enchufe-bench's raw mode at the same concurrency,
checks that the generator's counts agree with both servers' own counters,
and prints one table with the ratios that matter. The run is written as
JSON under bench/results/ with a PNG plot of throughput and p99 against
connections (gnuplot). Every process it starts is stopped by its PID.
"""
import argparse
import datetime
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

BIN = "bin"
HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_enchufe(*args):
    proc = subprocess.Popen([os.path.join(BIN, "enchufe-server"), "--port", "0", *args],
                            stderr=subprocess.PIPE, text=True)
    for _ in range(10):
        line = proc.stderr.readline()
        if "Listening on" in line:
            return proc, int(line.strip().rsplit(":", 1)[1])
    proc.kill()
    raise SystemExit("enchufe-server did not start")


def stop_enchufe(proc):
    """SIGTERM, wait, and return the server's own count of answered requests."""
    proc.send_signal(signal.SIGTERM)
    out = proc.stderr.read()
    proc.wait(30)
    m = re.search(r"Stopped after (\d+) requests", out)
    return int(m.group(1)) if m else None


def start_redis():
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--daemonize", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("redis-server did not start")


def redis_commands(port):
    out = subprocess.run(["redis-cli", "-p", str(port), "INFO", "stats"],
                         capture_output=True, text=True, timeout=10).stdout
    return int(re.search(r"total_commands_processed:(\d+)", out).group(1))


def bench(port, seconds, conns, *args, threads=2):
    cmd = [os.path.join(BIN, "enchufe-bench"), "--port", str(port), "-d", str(seconds),
           "-c", str(conns), "-t", str(min(threads, conns)), "--json", "-q", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    if r.returncode != 0 and not r.stdout:
        raise SystemExit(f"enchufe-bench failed: {' '.join(cmd)}\n{r.stderr}")
    return json.loads(r.stdout)


def redis_benchmark(port, conns, requests, keepalive=True):
    cmd = ["redis-benchmark", "-p", str(port), "-c", str(conns), "-n", str(requests),
           "-t", "ping_inline", "--csv"]
    if not keepalive:
        cmd += ["-k", "0"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    for line in r.stdout.splitlines():
        if line.startswith('"PING_INLINE"'):
            fields = [f.strip('"') for f in line.split(",")]
            row = {"requests_per_s": float(fields[1])}
            if len(fields) >= 6:  # redis 7: rps, avg, min, p50, p95, p99, max
                row["p50_ms"], row["p99_ms"] = float(fields[4]), float(fields[6])
            return row
    raise SystemExit(f"redis-benchmark gave no result:\n{r.stdout}\n{r.stderr}")


def row(name, result, server):
    errors = sum(result["errors"].values())
    return {"name": name, "server": server, "connections": result["connections"],
            "mode": result["mode"], "mix": result["mix"],
            "requests_per_s": result["requests_per_s"],
            "p50_us": result["latency_us"]["p50"], "p99_us": result["latency_us"]["p99"],
            "p999_us": result["latency_us"]["p99.9"], "errors": errors, "raw": result}


def fmt_row(r):
    p99 = f"{r['p99_us'] / 1000:.2f}" if "p99_us" in r else "-"
    p50 = f"{r['p50_us'] / 1000:.2f}" if "p50_us" in r else "-"
    return (f"  {r['name']:<44} {r['connections']:>6} {r['requests_per_s']:>12,.0f} "
            f"{p50:>9} {p99:>9} {r.get('errors', 0):>7}")


def plot(rows, png):
    ka = sorted((r for r in rows if r["server"] == "enchufe" and r["mode"] == "keepalive"
                 and r["mix"] == "hit"), key=lambda r: r["connections"])
    if not ka or not shutil.which("gnuplot"):
        return False
    data = png[:-4] + ".dat"
    with open(data, "w") as f:
        for r in ka:
            f.write(f"{r['connections']} {r['requests_per_s']} {r['p99_us'] / 1000}\n")
    script = f"""
set terminal png size 900,500
set output '{png}'
set title 'enchufe-server, keep-alive search (enchufe-bench)'
set xlabel 'connections'
set logscale x 2
set ylabel 'requests/s'
set y2label 'p99 latency (ms)'
set ytics nomirror
set yrange [0:*]
set y2range [0:*]
set y2tics
set grid
plot '{data}' using 1:2 with linespoints title 'requests/s' axes x1y1, \\
     '{data}' using 1:3 with linespoints title 'p99 (ms)' axes x1y2
"""
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
    return True


class Run:
    """What one `make bench` run gathers: table rows, honesty checks, and
    the other figures (RSS, idle starvation)."""

    def __init__(self, seconds):
        self.s = seconds
        self.rows = []
        self.checks = []
        self.extra = {}

    def add(self, name, result, server):
        self.rows.append(row(name, result, server))

    def rps(self, name, conns=None):
        for r in self.rows:
            if r["name"] == name and (conns is None or r["connections"] == conns):
                return r["requests_per_s"]
        return None


def keepalive_rows(run, app, app_port, no_park_port):
    s = run.s
    for c in (1, 16, 50, 64, 256):
        run.add("enchufe keep-alive search", bench(app_port, s, c, "--warmup", "1"), "enchufe")
    run.add("enchufe keep-alive search, --no-park 64 workers",
            bench(no_park_port, s, 64, "--warmup", "1"), "enchufe")
    for c in (16, 64):
        run.add("enchufe per-conn search", bench(app_port, s, c, "--mode", "per-conn"), "enchufe")


def ten_thousand_row(run, app, app_port):
    """10,000 keep-alive connections on 16 workers, the server's RSS read mid-run."""
    s = run.s
    big = subprocess.Popen([os.path.join(BIN, "enchufe-bench"), "--port", str(app_port),
                            "-d", str(2 * s), "-c", "10000", "-t", "2", "--timeout", "30",
                            "--json", "-q"], stdout=subprocess.PIPE, text=True)
    time.sleep(1.5 * s)
    with open(f"/proc/{app.pid}/status") as f:
        run.extra["rss_kib_at_10000"] = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
    out, _ = big.communicate(timeout=2 * s + 120)
    run.add("enchufe keep-alive search, 10,000 conns", json.loads(out), "enchufe")


def payload_rows(run, app_port, echo_port):
    s = run.s
    run.add("enchufe keep-alive binary 4 KiB", bench(app_port, s, 16, "-r", "binary:4096"),
            "enchufe")
    run.add("enchufe keep-alive binary 64 KiB", bench(app_port, s, 16, "-r", "binary:65536"),
            "enchufe")
    run.add("enchufe echo 4 KiB", bench(echo_port, s, 16, "-r", "echo:4096"), "enchufe")


PING = ["--raw-request", "PING\\r\\n", "--raw-response", "+PONG\\r\\n"]


def redis_benchmark_row(name, mode, rb):
    return {"name": name, "server": "redis", "connections": 50, "mode": mode, "mix": "ping",
            "requests_per_s": rb["requests_per_s"],
            **({"p50_us": rb["p50_ms"] * 1000, "p99_us": rb["p99_ms"] * 1000}
               if "p99_ms" in rb else {})}


def redis_rows(run, redis_port):
    """Redis PING with both generators, and the generator's count against
    Redis's own (no warmup to hide behind)."""
    s = run.s
    for c in (16, 50):
        run.add("redis PING keep-alive (enchufe-bench)",
                bench(redis_port, s, c, *PING, "--warmup", "1"), "redis")
    before = redis_commands(redis_port)
    r = bench(redis_port, s, 50, *PING)
    after = redis_commands(redis_port)
    run.checks.append(("redis total_commands_processed", after - before - 1,  # INFO is one
                       r["requests"] + r["in_flight"], r))
    rb = redis_benchmark(redis_port, 50, int(max(run.rows[-1]["requests_per_s"] * s, 10000)))
    run.rows.append(redis_benchmark_row("redis PING keep-alive (redis-benchmark)", "keepalive", rb))
    run.add("redis PING per-conn (enchufe-bench)", bench(redis_port, s, 50, *PING, "--mode",
                                                         "per-conn"), "redis")
    rb = redis_benchmark(redis_port, 50, int(max(run.rows[-1]["requests_per_s"] * s, 5000)),
                         keepalive=False)
    run.rows.append(redis_benchmark_row("redis PING per-conn (redis-benchmark -k 0)", "per-conn",
                                        rb))


def server_rows(run):
    """Every row that needs the long-running servers, which it stops after."""
    app, app_port = start_enchufe()  # defaults: 16 workers, idle connections parked
    no_park, no_park_port = start_enchufe("--no-park", "--workers", "64")
    echo, echo_port = start_enchufe("--mode", "echo")
    redis, redis_port = start_redis()
    try:
        print(f"enchufe-server (app and echo with defaults: 16 workers, parking; app --no-park "
              f"with 64 workers) and redis-server on loopback; {run.s:g} s per row",
              file=sys.stderr)
        keepalive_rows(run, app, app_port, no_park_port)
        ten_thousand_row(run, app, app_port)
        payload_rows(run, app_port, echo_port)
        redis_rows(run, redis_port)
        run.add("enchufe per-conn search", bench(app_port, run.s, 50, "--mode", "per-conn"),
                "enchufe")
    finally:
        for proc in (app, no_park, echo):
            stop_enchufe(proc)
        redis.send_signal(signal.SIGTERM)
        redis.wait(30)


def idle_starvation(run):
    """How many idle keep-alive connections stop a new client being served."""
    for label, opts in (("parking (default, 16 workers)", []),
                        ("--no-park, 16 workers", ["--no-park"])):
        out = subprocess.run([sys.executable, os.path.join(HERE, "idle_starvation.py"),
                              "--bin", BIN, "--max", "5000", "--", "--workers", "16", *opts],
                             capture_output=True, text=True, timeout=600).stdout.strip()
        run.extra[f"idle starvation, {label}"] = out.rsplit(":", 1)[-1].strip()


def enchufe_honesty(run):
    """The generator's count against enchufe-server's own, on a fresh server."""
    app, app_port = start_enchufe()
    r = bench(app_port, run.s, 50)
    served = stop_enchufe(app)
    run.checks.append(("enchufe-server requests answered", served,
                       r["requests"] + r["in_flight"], r))


def ratios(run):
    rps = run.rps
    return [
        ("enchufe-bench / redis-benchmark, Redis PING keep-alive, 50 conns (>= 1.0: the generator is lean)",
         rps("redis PING keep-alive (enchufe-bench)", 50) / rps("redis PING keep-alive (redis-benchmark)")),
        ("enchufe-bench / redis-benchmark -k 0, Redis PING per-conn, 50 conns (within 5%)",
         rps("redis PING per-conn (enchufe-bench)") / rps("redis PING per-conn (redis-benchmark -k 0)")),
        ("enchufe search / Redis PING, keep-alive, 50 conns (target >= 0.65)",
         rps("enchufe keep-alive search", 50) / rps("redis PING keep-alive (enchufe-bench)", 50)),
        ("enchufe search / Redis PING, per-conn, 50 conns (target >= 0.95)",
         rps("enchufe per-conn search", 50) / rps("redis PING per-conn (enchufe-bench)")),
        ("parking (16 workers) / --no-park (64 workers), keep-alive, 64 conns (target >= 0.90)",
         rps("enchufe keep-alive search", 64) / rps("enchufe keep-alive search, --no-park 64 workers")),
    ]


def print_report(run, ratio_list):
    print(f"\n  {'run':<44} {'conns':>6} {'requests/s':>12} {'p50 ms':>9} {'p99 ms':>9} "
          f"{'errors':>7}")
    for r in run.rows:
        print(fmt_row(r))
    print("\n  ratios")
    for name, value in ratio_list:
        print(f"    {value:6.2f}  {name}")
    print("\n  scale")
    big = next(r for r in run.rows if r["connections"] == 10000)
    print(f"    10,000 connections on 16 workers: {big['raw']['never_answered']} never answered, "
          f"{big['errors']} errors, server RSS {run.extra['rss_kib_at_10000'] / 1024:.1f} MiB")
    for k, v in run.extra.items():
        if k.startswith("idle starvation"):
            print(f"    {k}: {v} idle connections")
    print("\n  honesty: requests the generator counted (+ in flight at the end) vs the server's own count")
    for name, server_count, bench_count, _ in run.checks:
        diff = (bench_count - server_count) / server_count * 100 if server_count else float("nan")
        print(f"    {name}: server {server_count}, enchufe-bench {bench_count} ({diff:+.2f}%)")


def save(run, ratio_list):
    """The run as JSON, and the plot, under bench/results/."""
    os.makedirs(RESULTS, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = os.path.join(RESULTS, f"bench-{stamp}.json")
    with open(path, "w") as f:
        json.dump({"rows": [{k: v for k, v in r.items() if k != "raw"} | {"raw": r.get("raw")}
                            for r in run.rows],
                   "ratios": {n: v for n, v in ratio_list}, "extra": run.extra,
                   "checks": [{"name": n, "server": a, "bench": b} for n, a, b, _ in run.checks]},
                  f, indent=1)
    png = os.path.join(RESULTS, f"bench-{stamp}.png")
    print(f"\n  written: {path}" + (f"\n           {png}" if plot(run.rows, png) else ""))


def main():
    ap = argparse.ArgumentParser(description="enchufe benchmark matrix")
    ap.add_argument("--seconds", type=float, default=5, help="per row (default 5)")
    ap.add_argument("--bin", default="bin")
    args = ap.parse_args()
    global BIN
    BIN = args.bin
    run = Run(args.seconds)
    server_rows(run)
    idle_starvation(run)
    enchufe_honesty(run)
    ratio_list = ratios(run)
    print_report(run, ratio_list)
    save(run, ratio_list)


if __name__ == "__main__":
    main()
