#!/usr/bin/env python3
"""System calls, context switches and CPU time the server spends per request.

    python3 bench/syscalls.py [--bin bin] [--seconds 4] [--conns 16] [-- SERVER OPTIONS]

Starts enchufe-server with the given options, loads it with enchufe-bench
(keep-alive search), and counts, on the server process only, system calls
(the raw_syscalls:sys_enter tracepoint) and context switches with
`perf stat -p` over the measured window, and its CPU time from
/proc/PID/stat; each is divided by the requests the generator counted.
Falls back to `strace -c -f` for the system calls when perf cannot attach
(strace slows the server, but the count per request stays meaningful).
Prints one JSON object. The server is stopped by its PID.
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
        cpu0, t0 = cpu_seconds(server.pid), time.time()
        counts = perf_counts(server.pid, args.seconds)
        tool = "perf"
        if counts is None:
            tool = "strace"
            counts = (strace_syscalls(server.pid, args.seconds), None)
        cpu, window = cpu_seconds(server.pid) - cpu0, time.time() - t0
        result = json.loads(bench.communicate(timeout=args.seconds + 120)[0])
    finally:
        harness.stop_server(server)
    # Requests in the window (perf counts for exactly `seconds`; strace
    # and the CPU time for about that), from the run's steady rate.
    requests = result["requests_per_s"] * (args.seconds if tool == "perf" else window)
    syscalls, switches = counts
    print(json.dumps({
        "server_opts": args.server_opts, "conns": args.conns, "tool": tool,
        "requests_per_s": round(result["requests_per_s"]),
        "syscalls_per_request": round(syscalls / requests, 2) if syscalls else None,
        "context_switches_per_request": round(switches / requests, 2) if switches else None,
        "server_cpu_us_per_request": round(cpu / (result["requests_per_s"] * window) * 1e6, 1),
    }))


if __name__ == "__main__":
    main()
