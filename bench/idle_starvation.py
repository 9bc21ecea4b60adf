#!/usr/bin/env python3
"""Measures how many idle connections it takes to stop a good client from
being served: opens N connections that each send one request, read the
answer and then sit idle (keep-alive), then checks whether a fresh client
is answered within --patience seconds. Prints the smallest N that starves
it, for a server started here on loopback with the given options.

Usage: bench/idle_starvation.py [--bin bin] [--max 64] [-- SERVER OPTIONS]

The script raises its own open-file limit to the hard limit, since each
idle connection is a descriptor on both sides.
"""
import argparse
import json
import os
import signal
import socket
import struct
import subprocess
import sys


def request(value):
    content = json.dumps({"action": "search", "value": value}).encode()
    header = json.dumps({"byteorder": sys.byteorder, "content-type": "text/json",
                         "content-encoding": "utf-8", "content-length": len(content)}).encode()
    return struct.pack(">H", len(header)) + header + content


def served(port, timeout):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(request("ring"))
            return len(s.recv(4096)) > 0
    except OSError:
        return False


def starves(port, n, patience):
    idle = []
    try:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=patience)
            s.sendall(request("x"))
            idle.append(s)
        for s in idle:  # make sure each one got a worker and was answered
            try:
                s.recv(4096)
            except socket.timeout:
                pass
        return not served(port, patience)
    finally:
        for s in idle:
            s.close()


def main():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="bin")
    ap.add_argument("--max", type=int, default=64)
    ap.add_argument("--patience", type=float, default=1.0)
    ap.add_argument("server_args", nargs="*")
    args = ap.parse_args()
    proc = subprocess.Popen([os.path.join(args.bin, "enchufe-server"), "--port", "0",
                             *args.server_args], stderr=subprocess.PIPE, text=True)
    try:
        port = None
        for _ in range(10):
            line = proc.stderr.readline()
            if "Listening on" in line:
                port = int(line.strip().rsplit(":", 1)[1])
                break
        if port is None:
            raise SystemExit("server did not start")
        # Doubling, then halving: a handful of probes, each with n idle ones.
        ok, bad = 0, None
        n = 1
        while n <= args.max:
            if starves(port, n, args.patience):
                bad = n
                break
            ok = n
            n = min(n * 2, args.max) if n < args.max else args.max + 1
        while bad is not None and bad - ok > 1:
            mid = (ok + bad) // 2
            if starves(port, mid, args.patience):
                bad = mid
            else:
                ok = mid
        if bad is None:
            print(f"idle connections to starve a good client: more than {args.max}")
        else:
            print(f"idle connections to starve a good client: {bad}")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)


if __name__ == "__main__":
    main()
