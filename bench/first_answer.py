#!/usr/bin/env python3
"""How long a new client waits for its first answer while every worker is
taken by an idle keep-alive client that has just been answered.

    python3 bench/first_answer.py [--bin bin] [--tries 200] [-- SERVER OPTIONS]

Each try: as many keep-alive clients as workers send a request and read
the answer (so each worker is now lingering on, or holding, an idle
connection), then a new client connects and sends one request; the time
from its connect to its whole answer is recorded. Prints the p50, p99 and
max in milliseconds as JSON. With lingering, the new client should call a
worker back at once; with --no-park it waits for the idle timeout (so run
that mode with a short --idle-timeout, or do not). Loopback only; the
server is stopped by its PID.
"""
import argparse
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default="bin")
    ap.add_argument("--tries", type=int, default=200)
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("server_opts", nargs="*")
    args = ap.parse_args()
    server, port = harness.start_server(args.bin, "--workers", str(args.workers),
                                        *args.server_opts)
    times = []
    try:
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(args.workers)]
        req = harness.search("ring")
        for _ in range(args.tries):
            for s in idle:
                s.sendall(req)
            for s in idle:
                harness.read_frame(s)
            t0 = time.perf_counter()
            with socket.create_connection(("127.0.0.1", port), timeout=10) as new:
                new.sendall(req)
                harness.read_frame(new)
            times.append((time.perf_counter() - t0) * 1000)
        for s in idle:
            s.close()
    finally:
        harness.stop_server(server)
    times.sort()
    pick = lambda q: times[min(len(times) - 1, int(q * len(times)))]
    print(json.dumps({"tries": len(times), "p50_ms": round(pick(0.5), 3),
                      "p99_ms": round(pick(0.99), 3), "max_ms": round(times[-1], 3)}))


if __name__ == "__main__":
    main()
