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
import signal
import socket
import struct
import subprocess
import time


def request(value):
    content = json.dumps({"action": "search", "value": value}, ensure_ascii=False).encode()
    header = json.dumps({"byteorder": "little", "content-type": "text/json",
                         "content-encoding": "utf-8", "content-length": len(content)}).encode()
    return struct.pack(">H", len(header)) + header + content


def read_answer(sock):
    """Reads one whole framed answer."""
    def exactly(n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data
    hlen = struct.unpack(">H", exactly(2))[0]
    header = json.loads(exactly(hlen))
    return exactly(header["content-length"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default="bin")
    ap.add_argument("--tries", type=int, default=200)
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("server_opts", nargs="*")
    args = ap.parse_args()
    server = subprocess.Popen([os.path.join(args.bin, "enchufe-server"), "--port", "0",
                               "--workers", str(args.workers), *args.server_opts],
                              stderr=subprocess.PIPE, text=True)
    port = None
    for _ in range(10):
        line = server.stderr.readline()
        if "Listening on" in line:
            port = int(line.strip().rsplit(":", 1)[1])
            break
    times = []
    try:
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(args.workers)]
        req = request("ring")
        for _ in range(args.tries):
            for s in idle:
                s.sendall(req)
            for s in idle:
                read_answer(s)
            t0 = time.perf_counter()
            with socket.create_connection(("127.0.0.1", port), timeout=10) as new:
                new.sendall(req)
                read_answer(new)
            times.append((time.perf_counter() - t0) * 1000)
        for s in idle:
            s.close()
    finally:
        server.send_signal(signal.SIGTERM)
        server.stderr.read()
        server.wait(30)
    times.sort()
    pick = lambda q: times[min(len(times) - 1, int(q * len(times)))]
    print(json.dumps({"tries": len(times), "p50_ms": round(pick(0.5), 3),
                      "p99_ms": round(pick(0.99), 3), "max_ms": round(times[-1], 3)}))


if __name__ == "__main__":
    main()
