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


cpu_seconds = harness.cpu_seconds
answered = harness.answered


# What one unpipelined request costs the server at the least: a read and a
# write.
MIN_SYSCALLS_PER_REQUEST = 2


def measure_window(bin_dir, port, pid, seconds):
    """The window itself: requests the server answered and CPU it used
    between two stats answers `seconds` apart. (The first stats request is
    answered, and counted, inside the window: not one of the load's.)"""
    before, cpu0, t0 = answered(bin_dir, port), cpu_seconds(pid), time.time()
    time.sleep(seconds)
    requests = answered(bin_dir, port) - before - 1
    return {"requests": requests, "cpu": cpu_seconds(pid) - cpu0, "window": time.time() - t0}


def perf_counts(bin_dir, port, pid, seconds):
    """(syscalls, context switches, window) or None without perf. perf
    counts while the window is measured inside it, so the two cover the
    same requests (perf's span is longer by a stats call's start, a few
    ms: the figure errs high, never low)."""
    if not shutil.which("perf"):
        return None
    out = subprocess.run(["perf", "stat", "-x", ",", "-e",
                          "raw_syscalls:sys_enter,context-switches", "-p", str(pid), "--",
                          sys.executable, os.path.abspath(__file__), "--window", bin_dir,
                          str(port), str(pid), str(seconds)], capture_output=True, text=True)
    counts = {}
    for line in out.stderr.splitlines():
        parts = line.split(",")
        if len(parts) > 2 and parts[0].isdigit():
            counts[parts[2]] = int(parts[0])
    if "raw_syscalls:sys_enter" not in counts or not out.stdout.strip():
        return None
    return (counts["raw_syscalls:sys_enter"], counts.get("context-switches"),
            json.loads(out.stdout))


def main():
    if len(sys.argv) == 6 and sys.argv[1] == "--window":  # run by perf_counts
        print(json.dumps(measure_window(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]),
                                        float(sys.argv[5]))))
        return
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
        # Measure only once the load is seen running (answers rising).
        for _ in range(25):
            first = answered(args.bin, port)
            time.sleep(0.2)
            if answered(args.bin, port) - first > 1:
                break
        counts = perf_counts(args.bin, port, server.pid, args.seconds)
        tool = "perf"
        if counts is None:
            # strace attached around the window: its count errs high.
            tool = "strace"
            tracer = subprocess.Popen(["strace", "-c", "-f", "-p", str(server.pid)],
                                      stderr=subprocess.PIPE, text=True)
            time.sleep(0.5)
            w = measure_window(args.bin, port, server.pid, args.seconds)
            tracer.send_signal(signal.SIGINT)
            err = tracer.communicate(timeout=30)[1]
            m = re.search(r"^\s*100\.00\s+\S+\s+\S+\s+(\d+)", err, re.M)
            counts = (int(m.group(1)) if m else None, None, w)
        syscalls, switches, w = counts
        requests, cpu, window = w["requests"], w["cpu"], w["window"]
        result = json.loads(bench.communicate(timeout=args.seconds + 120)[0])
    finally:
        harness.stop_server(server)
    if requests <= 0:
        raise SystemExit("syscalls.py: the server answered nothing in the window: the load "
                         "did not run while it was measured")
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
