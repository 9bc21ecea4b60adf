#!/usr/bin/env python3
"""System calls, context switches and CPU time the server spends per request.

    python3 bench/syscalls.py [--bin bin] [--seconds 4] [--conns 16] [-- SERVER OPTIONS]

Starts enchufe-server with the given options, loads it with enchufe-bench
(keep-alive search), and counts, on the server process only, system calls
(the raw_syscalls:sys_enter tracepoint) and context switches with
`perf stat -p` over the measured window, and its CPU time from
/proc/PID/stat over the same window; each is divided by the requests the
server itself answered in that window (its stats answer, asked just
before and just after), not by a rate the generator measured over a
longer run. Falls back to `strace -c -f` for the system calls when perf
cannot attach (strace slows the server, but the count per request stays
meaningful). A figure below what a request must cost (a read and a
write: 2 system calls) means the count missed something: the tool says
so and exits 1 rather than print it. Prints one JSON object. The server
is stopped by its PID.
"""
import argparse
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


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def answered(bin_dir, port):
    """The requests the server has answered so far (its stats answer)."""
    out = subprocess.run([os.path.join(bin_dir, "enchufe-cli"), "--port", str(port), "--json",
                          "stats"], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise SystemExit(f"syscalls.py: cannot read the server's stats: {out.stderr.strip()}")
    return json.loads(out.stdout)["result"]["requests"]["total"]


# What one unpipelined request costs the server at the least: a read and a
# write.
MIN_SYSCALLS_PER_REQUEST = 2


def perf_counts(pid, seconds):
    """(syscalls, context switches) over `seconds`, or None without perf."""
    if not shutil.which("perf"):
        return None
    out = subprocess.run(["perf", "stat", "-x", ",", "-e",
                          "raw_syscalls:sys_enter,context-switches", "-p", str(pid), "--",
                          "sleep", str(seconds)], capture_output=True, text=True)
    counts = {}
    for line in out.stderr.splitlines():
        parts = line.split(",")
        if len(parts) > 2 and parts[0].isdigit():
            counts[parts[2]] = int(parts[0])
    if "raw_syscalls:sys_enter" not in counts:
        return None
    return counts["raw_syscalls:sys_enter"], counts.get("context-switches")


def strace_syscalls(pid, seconds):
    proc = subprocess.Popen(["strace", "-c", "-f", "-p", str(pid)], stderr=subprocess.PIPE,
                            text=True)
    time.sleep(seconds)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    m = re.search(r"^\s*100\.00\s+\S+\s+\S+\s+(\d+)", err, re.M)
    return int(m.group(1)) if m else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default="bin")
    ap.add_argument("--seconds", type=float, default=4)
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("server_opts", nargs="*")
    args = ap.parse_args()
    server, port = harness.start_server(args.bin, *args.server_opts)
    try:
        # The load runs longer than the window, which starts after a warmup.
        bench = subprocess.Popen([os.path.join(args.bin, "enchufe-bench"), "--port", str(port),
                                  "-c", str(args.conns), "-t", "2", "-d",
                                  str(args.seconds + 2), "--json", "-q"],
                                 stdout=subprocess.PIPE, text=True)
        time.sleep(1)
        # The window: the server's answered count and CPU time read just
        # before and just after the count of its system calls. (The first
        # stats request is answered, and counted, inside the window.)
        before, cpu0, t0 = answered(args.bin, port), cpu_seconds(server.pid), time.time()
        counts = perf_counts(server.pid, args.seconds)
        tool = "perf"
        if counts is None:
            tool = "strace"
            counts = (strace_syscalls(server.pid, args.seconds), None)
        cpu, window = cpu_seconds(server.pid) - cpu0, time.time() - t0
        requests = answered(args.bin, port) - before - 1
        result = json.loads(bench.communicate(timeout=args.seconds + 120)[0])
    finally:
        harness.stop_server(server)
    if requests <= 0:
        raise SystemExit("syscalls.py: the server answered nothing in the window: the load "
                         "did not run while it was measured")
    syscalls, switches = counts
    per_request = syscalls / requests if syscalls else None
    if per_request is not None and per_request < MIN_SYSCALLS_PER_REQUEST:
        raise SystemExit(f"syscalls.py: {tool} counted {syscalls} system calls for {requests} "
                         f"requests answered ({per_request:.2f} each), fewer than a request "
                         f"costs ({MIN_SYSCALLS_PER_REQUEST}): it did not see every thread")
    print(json.dumps({
        "server_opts": args.server_opts, "conns": args.conns, "tool": tool,
        "requests_per_s": round(result["requests_per_s"]),
        "window_s": round(window, 2), "requests_in_window": requests,
        "syscalls_per_request": round(per_request, 2) if per_request else None,
        "context_switches_per_request": round(switches / requests, 2) if switches else None,
        "server_cpu_us_per_request": round(cpu / requests * 1e6, 1),
    }))


if __name__ == "__main__":
    main()
