#!/usr/bin/env python3
"""What a request costs the server: CPU and heap allocations per request,
enchufe-server's search beside Redis's PING, on the same generator.

    python3 bench/cost.py [--bin bin] [--seconds 3] [--loads keepalive,pipelined]

Two loads (enchufe-bench, 2 threads): keep-alive with 50 connections, and
16 connections pipelining 16 deep. For each, each server is started,
loaded, and measured over a window inside the run: the server's CPU time
(/proc/PID/stat, user + system) and the requests it answered itself
(enchufe's stats answer, Redis's total_commands_processed), read at the
window's two ends; CPU per request is one divided by the other. Then the
same load again with the server under LD_PRELOAD=build/alloc_count.so,
which counts its malloc family (glibc's for enchufe, jemalloc for
Debian's redis-server) into a file read at the window's ends: allocations
per request. The counting costs CPU, so the CPU figure comes from the
first run, never this one. Prints one JSON object; every process it
starts is stopped by its PID.
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

ALLOC_LIB = "build/alloc_count.so"
LOADS = {"keepalive": ["-c", "50"], "pipelined": ["-c", "16", "-P", "16"]}


class Enchufe:
    name = "enchufe search"

    def __init__(self, bin_dir, env=None):
        self.bin = bin_dir
        self.proc, self.port = harness.start_server(bin_dir, "--workers", "16", env=env)
        self.pid = self.proc.pid

    def answered(self):
        return harness.answered(self.bin, self.port)

    def load_args(self):
        return []

    def stop(self):
        harness.stop_server(self.proc)


class Redis:
    name = "redis PING"

    def __init__(self, bin_dir, env=None):
        self.proc, self.port = harness.start_redis(env)
        self.pid = self.proc.pid

    def answered(self):
        return harness.redis_commands(self.port)

    def load_args(self):
        return ["--raw-request", "PING\\r\\n", "--raw-response", "+PONG\\r\\n"]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(30)


def window(server, bin_dir, load, seconds, read_extra=None):
    """Loads the server and measures one window inside the load: requests
    answered, CPU seconds, and read_extra()'s difference if given."""
    total = seconds + 2.5
    gen = subprocess.Popen([os.path.join(bin_dir, "enchufe-bench"), "--port", str(server.port),
                            "-d", str(total), "-t", "2", "--json", "-q", *LOADS[load],
                            *server.load_args()], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)  # connected and warm
        n0, c0 = server.answered(), harness.cpu_seconds(server.pid)
        e0 = read_extra() if read_extra else 0
        t0 = time.monotonic()
        time.sleep(seconds)
        e1 = read_extra() if read_extra else 0
        n1, c1 = server.answered(), harness.cpu_seconds(server.pid)
        span = time.monotonic() - t0
    finally:
        out, _ = gen.communicate(timeout=total + 60)
    result = json.loads(out)
    errors = sum(result["errors"].values())
    requests = n1 - n0 - 1  # the first asking (a stats request, an INFO) is counted in n1
    if requests <= 0:
        raise SystemExit(f"cost.py: {server.name} answered nothing in the window")
    return {"requests": requests, "span_s": round(span, 2), "cpu_s": c1 - c0,
            "extra": e1 - e0, "errors": errors}


def read_count(path):
    with open(path, "rb") as f:
        data = f.read(8)
    return struct.unpack("=Q", data)[0] if len(data) == 8 else 0


def measure(kind, bin_dir, load, seconds):
    server = kind(bin_dir)
    try:
        w = window(server, bin_dir, load, seconds)
    finally:
        server.stop()
    with tempfile.TemporaryDirectory() as tmp:
        counts = os.path.join(tmp, "allocations")
        env = {"LD_PRELOAD": os.path.abspath(ALLOC_LIB), "ALLOC_COUNT_FILE": counts}
        server = kind(bin_dir, env=env)
        try:
            a = window(server, bin_dir, load, seconds, lambda: read_count(counts))
        finally:
            server.stop()
    return {"server": kind.name, "load": load,
            "requests_per_s": round(w["requests"] / w["span_s"]),
            "cpu_us_per_request": round(w["cpu_s"] * 1e6 / w["requests"], 2),
            "allocations_per_request": round(a["extra"] / a["requests"], 3),
            "requests_in_window": w["requests"], "window_s": w["span_s"],
            "requests_counted_for_allocations": a["requests"],
            "errors": w["errors"] + a["errors"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default="bin")
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--loads", default="keepalive,pipelined")
    args = ap.parse_args()
    if not os.path.exists(ALLOC_LIB):
        raise SystemExit(f"cost.py: {ALLOC_LIB} is missing (make {ALLOC_LIB})")
    rows = []
    for load in args.loads.split(","):
        for kind in (Enchufe, Redis):
            rows.append(measure(kind, args.bin, load, args.seconds))
    print(json.dumps({"rows": rows}, indent=1))


if __name__ == "__main__":
    main()
