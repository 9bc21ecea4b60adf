#!/usr/bin/env python3
"""make bench: enchufe-server and Redis measured side by side, in one run.

Starts enchufe-server (in the configurations each row names) and
redis-server on loopback, runs the matrix with enchufe-bench: keep-alive
series for parking (the default), --no-park and Redis PING; the two modes
at the same worker counts; pipelining depths against Redis at the same
depth; per-connection, payload and 10,000-connection rows; fairness under
a flat-out pipeliner; a new client's first answer while every worker is
taken; system calls and context switches per request; idle starvation;
good clients beside 1,000 hostile connections of each kind (siege_bench.py).
It measures Redis PING with redis-benchmark too, checks that the
generator's counts agree with both servers' own counters, and prints one
table with the ratios that matter, each against its target. The run is
written as JSON under bench/results/ with a PNG plot (gnuplot). Every
process it starts is stopped by its PID.
"""
import argparse
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import siege_bench  # noqa: E402
import tls_bench  # noqa: E402

BIN = "bin"
HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")


free_port = harness.free_port


def start_enchufe(*args):
    return harness.start_server(BIN, *args)


def start_enchufe_at(port, *args):
    """enchufe-server on a given port (0: any), and the port it got."""
    return harness.start_server(BIN, *args, port=port)


def stop_enchufe(proc):
    """SIGTERM, wait, and return the server's own count of answered requests."""
    return harness.stop_server(proc)


start_redis = harness.start_redis
redis_commands = harness.redis_commands


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


def row(name, result, server, series=None):
    errors = sum(result["errors"].values())
    return {"name": name, "server": server, "series": series,
            "connections": result["connections"], "pipeline": result.get("pipeline", 1),
            "mode": result["mode"], "mix": result["mix"],
            "requests_per_s": result["requests_per_s"],
            "p50_us": result["latency_us"]["p50"], "p99_us": result["latency_us"]["p99"],
            "p999_us": result["latency_us"]["p99.9"], "errors": errors, "raw": result}


def fmt_row(r):
    p99 = f"{r['p99_us'] / 1000:.2f}" if "p99_us" in r else "-"
    p50 = f"{r['p50_us'] / 1000:.2f}" if "p50_us" in r else "-"
    return (f"  {r['name']:<52} {r['connections']:>6} {r['requests_per_s']:>12,.0f} "
            f"{p50:>9} {p99:>9} {r.get('errors', 0):>7}")


SERIES = ("parking (16 workers)", "--no-park (a worker per connection)", "Redis PING")
SERIES_CONNS = (1, 16, 50, 64, 256)
DEPTHS = (1, 4, 16, 64)


def plot(rows, png):
    """Top: requests/s and p99 (log scale) against connections, one series
    per mode and Redis as the reference. Bottom: requests/s and p99 against
    the pipeline depth, enchufe and Redis."""
    if not shutil.which("gnuplot"):
        return False
    base = png[:-4]
    files = {}
    for i, name in enumerate(SERIES):
        pts = sorted((r for r in rows if r.get("series") == name), key=lambda r: r["connections"])
        files[name] = f"{base}.s{i}.dat"
        with open(files[name], "w") as f:
            for r in pts:
                f.write(f"{r['connections']} {r['requests_per_s']} {r['p99_us'] / 1000}\n")
    for server in ("enchufe", "redis"):
        pts = sorted((r for r in rows if r.get("series") == f"pipeline {server}"),
                     key=lambda r: r["pipeline"])
        files[server] = f"{base}.p-{server}.dat"
        with open(files[server], "w") as f:
            for r in pts:
                f.write(f"{r['pipeline']} {r['requests_per_s']} {r['p99_us'] / 1000}\n")
    lines = ", ".join(f"'{files[n]}' using 1:2 with linespoints title '{n}'" for n in SERIES)
    p99 = ", ".join(f"'{files[n]}' using 1:3 with linespoints title '{n}'" for n in SERIES)
    script = f"""
set terminal png size 1400,900
set output '{png}'
set multiplot layout 2,2 title 'make bench: keep-alive search (Redis: PING), enchufe-bench, one run'
set grid
set logscale x 2
set key bottom right
set title 'throughput'
set xlabel 'connections'
set ylabel 'requests/s'
set yrange [0:*]
plot {lines}
set title 'p99 latency (log scale)'
set ylabel 'p99 (ms)'
set logscale y 10
set yrange [*:*]
plot {p99}
unset logscale y
set title 'pipelining, 16 connections'
set xlabel 'requests in flight per connection'
set ylabel 'requests/s'
set yrange [0:*]
plot '{files["enchufe"]}' using 1:2 with linespoints title 'enchufe search', \\
     '{files["redis"]}' using 1:2 with linespoints title 'Redis PING'
set title 'pipelining, p99 latency of each request (log scale)'
set ylabel 'p99 (ms)'
set logscale y 10
set yrange [*:*]
set key top left
plot '{files["enchufe"]}' using 1:3 with linespoints title 'enchufe search', \\
     '{files["redis"]}' using 1:3 with linespoints title 'Redis PING'
unset multiplot
"""
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
    return True


class Run:
    """What one `make bench` run gathers: table rows, honesty checks, and
    the other figures (RSS, idle starvation, fairness, system calls)."""

    def __init__(self, seconds):
        self.s = seconds
        self.rows = []
        self.checks = []
        self.extra = {}

    def add(self, name, result, server, series=None):
        self.rows.append(row(name, result, server, series))

    def get(self, name, conns=None, pipeline=None):
        for r in self.rows:
            if r["name"] == name and (conns is None or r["connections"] == conns) and \
                    (pipeline is None or r["pipeline"] == pipeline):
                return r
        return None

    def rps(self, name, conns=None, pipeline=None):
        r = self.get(name, conns, pipeline)
        return r["requests_per_s"] if r else float("nan")


class Servers:
    """enchufe-servers started on demand, one per configuration, and
    redis-server; all stopped by PID at the end."""

    def __init__(self):
        self.procs = {}
        self.redis = None

    def enchufe(self, *opts):
        if opts not in self.procs:
            self.procs[opts] = start_enchufe(*opts)
        return self.procs[opts][1]

    def enchufe_proc(self, *opts):
        self.enchufe(*opts)
        return self.procs[opts][0]

    def redis_port(self):
        if not self.redis:
            self.redis = start_redis()
        return self.redis[1]

    def stop(self):
        for proc, _ in self.procs.values():
            stop_enchufe(proc)
        if self.redis:
            self.redis[0].send_signal(signal.SIGTERM)
            self.redis[0].wait(30)


PARK16 = ("--workers", "16")
NOPARK_ALL = ("--no-park", "--workers", "256")
PING = ["--raw-request", "PING\\r\\n", "--raw-response", "+PONG\\r\\n"]


def series_rows(run, sv):
    """Keep-alive search against connections: parking, --no-park with a
    worker for every connection, and Redis PING as the reference."""
    for c in SERIES_CONNS:
        run.add("enchufe keep-alive search, parking", bench(sv.enchufe(*PARK16), run.s, c,
                "--warmup", "1"), "enchufe", SERIES[0])
        run.add("enchufe keep-alive search, --no-park 256 workers",
                bench(sv.enchufe(*NOPARK_ALL), run.s, c, "--warmup", "1"), "enchufe", SERIES[1])
        run.add("redis PING keep-alive (enchufe-bench)",
                bench(sv.redis_port(), run.s, c, *PING, "--warmup", "1"), "redis", SERIES[2])


def mode_rows(run, sv):
    """Parking against --no-park at the same worker count."""
    for workers, c in ((16, 16), (64, 50)):
        w = str(workers)
        run.add(f"enchufe keep-alive, parking {w} workers",
                bench(sv.enchufe("--workers", w), run.s, c, "--warmup", "1"), "enchufe")
        run.add(f"enchufe keep-alive, --no-park {w} workers",
                bench(sv.enchufe("--no-park", "--workers", w), run.s, c, "--warmup", "1"),
                "enchufe")


def pipeline_rows(run, sv):
    for depth in DEPTHS:
        d = str(depth)
        run.add(f"enchufe pipelined search, depth {d}",
                bench(sv.enchufe(*PARK16), run.s, 16, "-P", d, "--warmup", "1"), "enchufe",
                "pipeline enchufe")
        run.add(f"redis pipelined PING, depth {d}",
                bench(sv.redis_port(), run.s, 16, *PING, "-P", d, "--warmup", "1"), "redis",
                "pipeline redis")


def per_conn_rows(run, sv):
    for c in (16, 50, 64):
        run.add("enchufe per-conn search", bench(sv.enchufe(*PARK16), run.s, c, "--mode",
                                                 "per-conn"), "enchufe")


def ten_thousand_row(run, sv):
    """10,000 keep-alive connections on 16 workers, the server's RSS read mid-run."""
    s = run.s
    port, pid = sv.enchufe(*PARK16), sv.enchufe_proc(*PARK16).pid
    big = subprocess.Popen([os.path.join(BIN, "enchufe-bench"), "--port", str(port),
                            "-d", str(2 * s), "-c", "10000", "-t", "2", "--timeout", "30",
                            "--json", "-q"], stdout=subprocess.PIPE, text=True)
    time.sleep(1.5 * s)
    with open(f"/proc/{pid}/status") as f:
        run.extra["rss_kib_at_10000"] = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
    out, _ = big.communicate(timeout=2 * s + 120)
    run.add("enchufe keep-alive search, 10,000 conns", json.loads(out), "enchufe")


def payload_rows(run, sv):
    s, port = run.s, sv.enchufe(*PARK16)
    run.add("enchufe keep-alive binary 4 KiB", bench(port, s, 16, "-r", "binary:4096"), "enchufe")
    run.add("enchufe keep-alive binary 64 KiB", bench(port, s, 16, "-r", "binary:65536"),
            "enchufe")
    run.add("enchufe echo 4 KiB", bench(sv.enchufe("--mode", "echo"), s, 16, "-r", "echo:4096"),
            "enchufe")


def redis_benchmark_row(name, mode, rb):
    return {"name": name, "server": "redis", "connections": 50, "pipeline": 1, "mode": mode,
            "mix": "ping", "requests_per_s": rb["requests_per_s"],
            **({"p50_us": rb["p50_ms"] * 1000, "p99_us": rb["p99_ms"] * 1000}
               if "p99_ms" in rb else {})}


def redis_rows(run, sv):
    """Redis PING with both generators, and the generator's count against
    Redis's own (no warmup to hide behind)."""
    s, port = run.s, sv.redis_port()
    before = redis_commands(port)
    r = bench(port, s, 50, *PING)
    after = redis_commands(port)
    run.checks.append(("redis total_commands_processed", after - before - 1,  # INFO is one
                       r["requests"] + r["in_flight"], r))
    rb = redis_benchmark(port, 50, int(max(r["requests_per_s"] * s, 10000)))
    run.rows.append(redis_benchmark_row("redis PING keep-alive (redis-benchmark)", "keepalive", rb))
    run.add("redis PING per-conn (enchufe-bench)", bench(port, s, 50, *PING, "--mode", "per-conn"),
            "redis")
    rb = redis_benchmark(port, 50, int(max(run.rows[-1]["requests_per_s"] * s, 5000)),
                         keepalive=False)
    run.rows.append(redis_benchmark_row("redis PING per-conn (redis-benchmark -k 0)", "per-conn",
                                        rb))


def fairness(run, sv):
    """One worker; one client pipelining 64 deep without pause, and another
    sending 50 requests/s at a fixed rate: the second one's latency."""
    port = sv.enchufe("--workers", "1")
    hog = subprocess.Popen([os.path.join(BIN, "enchufe-bench"), "--port", str(port), "-c", "1",
                            "-t", "1", "-P", "64", "-d", str(run.s + 2), "--json", "-q"],
                           stdout=subprocess.PIPE, text=True)
    time.sleep(1)
    other = bench(port, run.s, 1, "-R", "50", threads=1)
    hog_result = json.loads(hog.communicate(timeout=run.s + 60)[0])
    run.extra["fairness"] = {"other_p99_ms": other["latency_us"]["p99"] / 1000,
                             "other_requests": other["requests"],
                             "other_errors": sum(other["errors"].values()),
                             "hog_requests_per_s": hog_result["requests_per_s"]}


def metrics_overhead(run):
    """Keep-alive 50 connections with --metrics on and a real Prometheus
    scraping it every second, against the same with metrics off: three
    rounds each, alternating, medians."""
    import statistics
    import tempfile
    if not shutil.which("prometheus"):
        run.extra["metrics overhead"] = {"error": "prometheus is not installed"}
        return
    work = tempfile.mkdtemp(prefix="enchufe-bench-prom-")
    on, on_port = start_enchufe("--metrics", "127.0.0.1:0")
    off, off_port = start_enchufe()
    metrics = None
    for _ in range(5):  # start_enchufe read up to "Listening on"; the next line says where
        line = on.stderr.readline()
        if line.startswith("Metrics on"):
            metrics = line.strip().split("http://")[1].split("/")[0]
            break
    with open(os.path.join(work, "prometheus.yml"), "w") as f:
        f.write("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: enchufe\n"
                f"    static_configs:\n      - targets: ['{metrics}']\n")
    prom = subprocess.Popen(["prometheus", f"--config.file={work}/prometheus.yml",
                             f"--storage.tsdb.path={work}/data",
                             f"--web.listen-address=127.0.0.1:{free_port()}", "--log.level=warn"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(2)
        ons, offs = [], []
        for _ in range(3):
            ons.append(bench(on_port, run.s, 50, "--warmup", "1")["requests_per_s"])
            offs.append(bench(off_port, run.s, 50, "--warmup", "1")["requests_per_s"])
        run.extra["metrics overhead"] = {"on": statistics.median(ons),
                                         "off": statistics.median(offs)}
    finally:
        prom.send_signal(signal.SIGTERM)
        prom.wait(30)
        stop_enchufe(on)
        stop_enchufe(off)
        shutil.rmtree(work, ignore_errors=True)


def haproxy_rows(run, work):
    """HAProxy's cost, and what three instances behind it give: 1 instance
    direct, HAProxy in front of 1, HAProxy in front of 3 (all on loopback),
    keep-alive and per-conn, 50 connections."""
    if not shutil.which("haproxy"):
        run.extra["haproxy"] = "haproxy is not installed"
        return
    servers = [start_enchufe() for _ in range(3)]
    try:
        for n in (1, 3):
            port = free_port()
            with open(os.path.join(HERE, "..", "contrib", "haproxy", "enchufe.cfg")) as f:
                cfg = f.read()
            cfg = cfg.replace("bind 127.0.0.1:6543", f"bind 127.0.0.1:{port}")
            cfg = cfg.replace("/run/haproxy/enchufe.sock", os.path.join(work, "haproxy.sock"))
            cfg = re.sub(r"    server enchufe\d .*\n", "", cfg)
            cfg += "".join(f"    server enchufe{i + 1} 127.0.0.1:{p}\n"
                           for i, (_, p) in enumerate(servers[:n]))
            path = os.path.join(work, "haproxy.cfg")
            with open(path, "w") as f:
                f.write(cfg)
            hap = subprocess.Popen(["haproxy", "-db", "-f", path], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
            time.sleep(1)
            try:
                for mode in ("keepalive", "per-conn"):
                    run.add(f"HAProxy in front of {n} instance{'s' if n > 1 else ''}, {mode}",
                            bench(port, run.s, 50, "--mode", mode, "--warmup", "1"), "enchufe")
            finally:
                hap.send_signal(signal.SIGTERM)
                hap.wait(30)
        for mode in ("keepalive", "per-conn"):
            run.add(f"1 instance direct, {mode}", bench(servers[0][1], run.s, 50, "--mode", mode,
                                                        "--warmup", "1"), "enchufe")
    finally:
        for proc, _ in servers:
            stop_enchufe(proc)


def reuseport_rows(run):
    """Two processes of 8 workers on one port (--reuseport) against one of 16."""
    port = free_port()
    pair = [start_enchufe_at(port, "--reuseport", "--workers", "8")[0] for _ in range(2)]
    try:
        for mode in ("keepalive", "per-conn"):
            run.add(f"--reuseport, 2 processes x 8 workers, {mode}",
                    bench(port, run.s, 50, "--mode", mode, "--warmup", "1"), "enchufe")
    finally:
        for proc in pair:
            stop_enchufe(proc)
    one, one_port = start_enchufe("--workers", "16")
    try:
        for mode in ("keepalive", "per-conn"):
            run.add(f"1 process x 16 workers, {mode}",
                    bench(one_port, run.s, 50, "--mode", mode, "--warmup", "1"), "enchufe")
    finally:
        stop_enchufe(one)


def scaling_rows(run):
    import tempfile
    work = tempfile.mkdtemp(prefix="enchufe-bench-haproxy-")
    try:
        haproxy_rows(run, work)
        reuseport_rows(run)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def helper(script, *args):
    out = subprocess.run([sys.executable, os.path.join(HERE, script), "--bin", BIN, *args],
                         capture_output=True, text=True, timeout=600)
    return json.loads(out.stdout) if out.stdout.strip() else {"error": out.stderr.strip()}


def per_request_costs(run):
    """System calls, context switches and server CPU per request, 16 workers
    and 16 connections, both modes."""
    for label, opts in (("parking", ["--workers", "16"]),
                        ("--no-park", ["--workers", "16", "--no-park"])):
        run.extra[f"costs, {label}"] = helper("syscalls.py", "--seconds", str(run.s), "--", *opts)
    run.extra["first answer"] = helper("first_answer.py", "--tries", "200")


def request_costs(run):
    """CPU and heap allocations per request on the server, enchufe's search
    and Redis's PING, keep-alive 50 conns and pipelined 16 x 16 (cost.py)."""
    run.extra["cost per request"] = helper("cost.py", "--seconds", str(run.s))


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
    """(value, what, target) for every ratio the issues set a target on."""
    rps = run.rps
    out = [
        (rps("redis PING keep-alive (enchufe-bench)", 50) /
         rps("redis PING keep-alive (redis-benchmark)"),
         "enchufe-bench / redis-benchmark, Redis PING keep-alive, 50 conns", ">= 1.0: lean"),
        (rps("redis PING per-conn (enchufe-bench)") /
         rps("redis PING per-conn (redis-benchmark -k 0)"),
         "enchufe-bench / redis-benchmark -k 0, Redis PING per-conn, 50 conns", "within 5%"),
        (rps("enchufe keep-alive search, parking", 50) /
         rps("redis PING keep-alive (enchufe-bench)", 50),
         "enchufe search / Redis PING, keep-alive, 50 conns", ">= 0.75"),
        (rps("enchufe per-conn search", 50) / rps("redis PING per-conn (enchufe-bench)"),
         "enchufe search / Redis PING, per-conn, 50 conns", ">= 0.95"),
        (rps("enchufe keep-alive, parking 16 workers") /
         rps("enchufe keep-alive, --no-park 16 workers"),
         "parking / --no-park, 16 workers, 16 conns", ">= 0.9"),
        (rps("enchufe keep-alive, parking 64 workers") /
         rps("enchufe keep-alive, --no-park 64 workers"),
         "parking / --no-park, 64 workers, 50 conns", ">= 0.9"),
    ]
    for mode in ("keepalive", "per-conn"):
        out.append((rps(f"HAProxy in front of 1 instance, {mode}") /
                    rps(f"1 instance direct, {mode}"),
                    f"HAProxy in front of 1 instance / direct, {mode}, 50 conns", "HAProxy's cost"))
        out.append((rps(f"HAProxy in front of 3 instances, {mode}") /
                    rps(f"HAProxy in front of 1 instance, {mode}"),
                    f"3 instances / 1 behind HAProxy, {mode}, 50 conns", "2 cores: ~1"))
        out.append((rps(f"--reuseport, 2 processes x 8 workers, {mode}") /
                    rps(f"1 process x 16 workers, {mode}"),
                    f"--reuseport 2 x 8 workers / 1 x 16, {mode}, 50 conns", "2 cores: ~1.0"))
    m = run.extra.get("metrics overhead", {})
    if "on" in m:
        out.append((m["on"] / m["off"], "--metrics on with Prometheus scraping every 1 s / "
                    "metrics off, keep-alive 50 conns (medians of 3)", ">= 0.98"))
    for depth in DEPTHS[1:]:
        out.append((rps(f"enchufe pipelined search, depth {depth}") /
                    rps(f"redis pipelined PING, depth {depth}"),
                    f"enchufe search / Redis PING, pipelined {depth} deep, 16 conns",
                    ">= 0.85" if depth == 16 else ">= 0.5"))
        out.append((rps(f"enchufe pipelined search, depth {depth}") /
                    rps("enchufe pipelined search, depth 1"),
                    f"enchufe pipelined {depth} deep / 1 deep, 16 conns", "more is better"))
    out += tls_bench.tls_ratios(rps, run.get)
    out += siege_bench.siege_ratios(run)
    return out


def print_report(run, ratio_list):
    print(f"\n  {'run':<52} {'conns':>6} {'requests/s':>12} {'p50 ms':>9} {'p99 ms':>9} "
          f"{'errors':>7}")
    for r in run.rows:
        print(fmt_row(r))
    print("\n  ratios (target)")
    for value, name, target in ratio_list:
        print(f"    {value:6.2f}  {name} ({target})")
    print("\n  scale and fairness")
    big = next(r for r in run.rows if r["connections"] == 10000)
    print(f"    10,000 connections on 16 workers: {big['raw']['never_answered']} never answered, "
          f"{big['errors']} errors, server RSS {run.extra['rss_kib_at_10000'] / 1024:.1f} MiB")
    big = run.get("enchufe TLS keep-alive search, 10,000 conns")
    if big:
        print(f"    10,000 TLS connections on 16 workers: {big['raw']['never_answered']} never "
              f"answered, {big['errors']} errors, {big['raw']['tls_full_handshakes']} handshakes, "
              f"server RSS peak {run.extra['tls_rss_kib_at_10000'] / 1024:.1f} MiB "
              f"(target < 256 MiB)")
    for k, v in run.extra.items():
        if k.startswith("idle starvation"):
            print(f"    {k}: {v} idle connections")
    f = run.extra["fairness"]
    print(f"    fairness, 1 worker, a client pipelining 64 deep flat out "
          f"({f['hog_requests_per_s']:,.0f} req/s): another client's p99 "
          f"{f['other_p99_ms']:.2f} ms over {f['other_requests']} requests, "
          f"{f['other_errors']} errors (target < 20 ms)")
    fa = run.extra["first answer"]
    print(f"    a new client while 16 idle keep-alive clients hold the 16 workers: first answer "
          f"p50 {fa.get('p50_ms')} ms, p99 {fa.get('p99_ms')} ms (target p99 < 1 ms)")
    siege_bench.print_siege(run)
    print("\n  per request on the server, 16 workers, 16 conns (target: <= 3 system calls, ~1 "
          "context switch)")
    for label in ("parking", "--no-park"):
        c = run.extra[f"costs, {label}"]
        if "error" in c:  # syscalls.py refused a window it could not trust
            print(f"    {label:<10} not measured: {c['error']}")
            continue
        print(f"    {label:<10} {c.get('syscalls_per_request')} system calls, "
              f"{c.get('context_switches_per_request')} context switches, "
              f"{c.get('server_cpu_us_per_request')} us CPU ({c.get('tool')}, "
              f"{c.get('requests_in_window')} requests the server answered in "
              f"{c.get('window_s')} s)")
    print_request_costs(run)
    print("\n  honesty: requests the generator counted (+ in flight at the end) vs the server's own count")
    for name, server_count, bench_count, _ in run.checks:
        diff = (bench_count - server_count) / server_count * 100 if server_count else float("nan")
        print(f"    {name}: server {server_count}, enchufe-bench {bench_count} ({diff:+.2f}%)")


def print_request_costs(run):
    cost = run.extra.get("cost per request", {})
    print("\n  cost per request on the server (cost.py: CPU from /proc, allocations under "
          "tools/alloc_count.c, each over the requests the server answered in its window)")
    if "rows" not in cost:
        print(f"    not measured: {cost.get('error')}")
        return
    by = {(r["server"], r["load"]): r for r in cost["rows"]}
    for load, label in (("keepalive", "keep-alive, 50 conns"), ("pipelined", "pipelined 16 deep, 16 conns")):
        e, r = by.get(("enchufe search", load)), by.get(("redis PING", load))
        if not e or not r:
            continue
        for row in (e, r):
            print(f"    {label:<28} {row['server']:<15} {row['requests_per_s']:>9,} req/s "
                  f"{row['cpu_us_per_request']:>6.2f} us CPU {row['allocations_per_request']:>6.2f} "
                  f"allocations")
        print(f"    {label:<28} enchufe / Redis: rate {e['requests_per_s'] / r['requests_per_s']:.2f}, "
              f"CPU per request {e['cpu_us_per_request'] / r['cpu_us_per_request']:.2f}")


def save(run, ratio_list):
    """The run as JSON, and the plot, under bench/results/."""
    os.makedirs(RESULTS, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = os.path.join(RESULTS, f"bench-{stamp}.json")
    with open(path, "w") as f:
        json.dump({"rows": [{k: v for k, v in r.items() if k != "raw"} | {"raw": r.get("raw")}
                            for r in run.rows],
                   "ratios": [{"value": v, "what": n, "target": t} for v, n, t in ratio_list],
                   "extra": run.extra,
                   "checks": [{"name": n, "server": a, "bench": b} for n, a, b, _ in run.checks]},
                  f, indent=1)
    png = os.path.join(RESULTS, f"bench-{stamp}.png")
    print(f"\n  written: {path}" + (f"\n           {png}" if plot(run.rows, png) else ""))


def main():
    ap = argparse.ArgumentParser(description="enchufe benchmark matrix")
    ap.add_argument("--seconds", type=float, default=5, help="per row (default 5)")
    ap.add_argument("--bin", default="bin")
    ap.add_argument("--certs", default="build/tls", help="tools/make_test_certs.sh's output")
    args = ap.parse_args()
    global BIN
    BIN = args.bin
    run = Run(args.seconds)
    sv = Servers()
    print(f"enchufe-server and redis-server on loopback; {run.s:g} s per row", file=sys.stderr)
    try:
        for section in (series_rows, mode_rows, pipeline_rows, per_conn_rows, ten_thousand_row,
                        payload_rows, redis_rows, fairness):
            section(run, sv)
    finally:
        sv.stop()
    scaling_rows(run)
    tls_bench.tls_rows(run, lambda port, *a: bench(port, run.s, 50, *a), BIN,
                       os.path.abspath(args.certs))
    siege_bench.siege_rows(run, BIN, os.path.abspath(args.certs))
    per_request_costs(run)
    request_costs(run)
    metrics_overhead(run)
    idle_starvation(run)
    enchufe_honesty(run)
    ratio_list = ratios(run)
    print_report(run, ratio_list)
    save(run, ratio_list)


if __name__ == "__main__":
    main()
