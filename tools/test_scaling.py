#!/usr/bin/env python3
"""Past one process and one machine, tested against the real components.

  activation   systemd-socket-activate hands enchufe-server its socket (TCP
               and Unix); then a restart under load on an inherited socket
               (a holder keeps it open, as systemd does, while the server is
               stopped and started again): no connection refused, no
               request failed.
  haproxy      three instances, each in a network namespace of its own with
               its own address on a veth pair, HAProxy on loopback in
               front; enchufe-bench drives keep-alive and per-conn load
               through it while every instance is restarted in turn
               (SIGTERM, --shutdown-delay, drain): zero failed requests
               (retries on a new connection reported apart), every
               instance served. Then one instance is SIGKILLed: how many
               requests failed, how long until HAProxy marked it down, and
               that it rejoins.
  reuseport    three processes on one port (--reuseport) in a namespace of
               its own; each served some of 3,000 connections; a rolling
               SIGTERM, with net.ipv4.tcp_migrate_req off and then on (set
               only inside that namespace): the resets counted for each.

Needs root (network namespaces), haproxy, iproute2 and systemd's
systemd-socket-activate; `make test` installs them. Everything it starts
is stopped by PID, and the namespaces and links it made are deleted.

    python3 tools/test_scaling.py [--bin bin] [--only PART]
"""
import argparse
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(HERE_DIR := os.path.dirname(os.path.abspath(__file__)), "..", "bench"))
import harness  # noqa: E402

BIN = "bin"
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
results = {"passed": 0, "failed": 0}
procs = []


def check(name, ok, detail=""):
    results["passed" if ok else "failed"] += 1
    print(f"{'PASS' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)


def spawn(cmd, **kw):
    p = subprocess.Popen(cmd, **kw)
    procs.append(p)
    return p


def stop(p, sig=signal.SIGTERM, timeout=30):
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def run(*cmd, check_rc=True):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if check_rc and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip()}")
    return r


def wait_line(proc, needle, seconds=10):
    """Reads the process's stderr until a line containing needle."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        if needle in line:
            return line
    return None


def search_ok(host, port, timeout=3):
    """One search over a new connection; True if the right answer came."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(harness.search("ring"))
            data = b""
            while b"Misty" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    return False
                data += chunk
            return True
    except OSError:
        return False


def bench_cmd(host, port, seconds, *opts, ns=None):
    cmd = [os.path.join(BIN, "enchufe-bench"), "--host", host, "--port", str(port), "-d",
           str(seconds), "-q", "--json", "--timeout", "10", *opts]
    return (["ip", "netns", "exec", ns] if ns else []) + cmd


def bench_result(p):
    out, _ = p.communicate(timeout=300)
    r = json.loads(out)
    r["failed"] = sum(r["errors"].values())
    return r


# --- socket activation --------------------------------------------------------

def activation_basic(work):
    port = free_port()
    p = spawn(["systemd-socket-activate", "-l", f"127.0.0.1:{port}", "--fdname=enchufe",
               os.path.join(BIN, "enchufe-server")], stderr=subprocess.PIPE, text=True)
    wait_line(p, "Listening on 127.0.0.1")  # the tool's own line
    ok = search_ok("127.0.0.1", port, timeout=5)
    line = wait_line(p, "handed over by systemd", 5)
    stop(p)
    check("systemd-socket-activate: a TCP socket handed over, served", ok and line is not None,
          (line or "no 'handed over' line").strip())
    path = os.path.join(work, "activated.sock")
    p = spawn(["systemd-socket-activate", "-l", path, os.path.join(BIN, "enchufe-server")],
              stderr=subprocess.PIPE, text=True)
    wait_line(p, "Listening on")
    out = run(os.path.join(BIN, "enchufe-cli"), "--unix", path, "search", "ring",
              check_rc=False)
    stop(p)
    check("systemd-socket-activate: a Unix socket handed over, served",
          out.returncode == 0 and "Misty" in out.stdout, out.stdout.strip() or out.stderr.strip())


def start_activated(listener, tag):
    """enchufe-server on an inherited socket, as systemd starts it: the
    socket as fd 3, LISTEN_FDS=1, LISTEN_PID the server's own PID."""
    def child():
        os.dup2(listener.fileno(), 3)
        os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()), LISTEN_FDNAMES=tag)
    p = spawn([os.path.join(BIN, "enchufe-server")], preexec_fn=child, close_fds=False,
              stderr=subprocess.PIPE, text=True)
    if not wait_line(p, "handed over by systemd"):
        raise RuntimeError("the activated server did not start")
    return p


def activation_restart():
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    port = listener.getsockname()[1]
    server = start_activated(listener, "enchufe")
    ka = spawn(bench_cmd("127.0.0.1", port, 6, "-c", "20"), stdout=subprocess.PIPE, text=True)
    pc = spawn(bench_cmd("127.0.0.1", port, 6, "-c", "10", "--mode", "per-conn"),
               stdout=subprocess.PIPE, text=True)
    restarts = 0
    for _ in range(2):
        time.sleep(1.5)
        stop(server)  # the socket stays open in this process, as in systemd
        server = start_activated(listener, "enchufe")
        restarts += 1
    a, b = bench_result(ka), bench_result(pc)
    stop(server)
    listener.close()
    detail = (f"{restarts} restarts; keep-alive {a['requests']} requests, {a['failed']} failed, "
              f"{a['retried']} retried; per-conn {b['requests']} requests, {b['failed']} failed, "
              f"{b['errors']['connect']} connections refused "
              f"({json.dumps({k: v for k, v in {**a['errors'], **b['errors']}.items() if v})})")
    check("restart under load on an inherited socket refuses and fails nothing",
          a["failed"] == 0 and b["failed"] == 0 and a["requests"] > 0 and b["requests"] > 0,
          detail)


# --- network namespaces ---------------------------------------------------------

class Namespaces:
    """Network namespaces and veth pairs this run made; deleted at exit."""

    def __init__(self):
        self.names, self.links = [], []
        self.tag = f"e{os.getpid() % 10000}"

    def host(self, i, subnet):
        """Namespace i with address 10.subnet.i.2, reached from here at
        10.subnet.i.1 over a veth pair."""
        ns = f"{self.tag}h{i}"
        here, there = f"{self.tag}a{i}", f"{self.tag}b{i}"
        run("ip", "netns", "add", ns)
        self.names.append(ns)
        run("ip", "link", "add", here, "type", "veth", "peer", "name", there)
        self.links.append(here)
        run("ip", "link", "set", there, "netns", ns)
        run("ip", "addr", "add", f"10.{subnet}.{i}.1/24", "dev", here)
        run("ip", "link", "set", here, "up")
        run("ip", "netns", "exec", ns, "ip", "addr", "add", f"10.{subnet}.{i}.2/24", "dev", there)
        run("ip", "netns", "exec", ns, "ip", "link", "set", there, "up")
        run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        return ns, f"10.{subnet}.{i}.2"

    def alone(self, name):
        """A namespace with only its loopback."""
        ns = f"{self.tag}{name}"
        run("ip", "netns", "add", ns)
        self.names.append(ns)
        run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        return ns

    def delete(self):
        for link in self.links:
            run("ip", "link", "del", link, check_rc=False)
        for ns in self.names:
            run("ip", "netns", "del", ns, check_rc=False)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- HAProxy ------------------------------------------------------------------------

def haproxy_config(work, port, servers):
    with open(os.path.join(ROOT, "contrib", "haproxy", "enchufe.cfg")) as f:
        cfg = f.read()
    cfg = cfg.replace("bind 127.0.0.1:6543", f"bind 127.0.0.1:{port}")
    cfg = cfg.replace("/run/haproxy/enchufe.sock", os.path.join(work, "haproxy.sock"))
    cfg = re.sub(r"    server enchufe\d .*\n", "", cfg)
    cfg += "".join(f"    server enchufe{i + 1} {addr}:7000 check\n" for i, addr in enumerate(servers))
    path = os.path.join(work, "haproxy.cfg")
    with open(path, "w") as f:
        f.write(cfg)
    return path


def haproxy_status(work):
    """{server name: status} from HAProxy's stats socket."""
    try:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(2)
        s.connect(os.path.join(work, "haproxy.sock"))
        s.sendall(b"show stat\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
    except OSError:
        return {}
    lines = data.decode().splitlines()
    cols = lines[0].lstrip("# ").split(",")
    out = {}
    for line in lines[1:]:
        row = dict(zip(cols, line.split(",")))
        if row.get("svname", "").startswith("enchufe"):
            out[row["svname"]] = row["status"]
    return out


def wait_status(work, name, want, seconds=15):
    t0 = time.time()
    while time.time() - t0 < seconds:
        if haproxy_status(work).get(name, "").startswith(want):
            return time.time() - t0
        time.sleep(0.05)
    return None


def start_instance(ns, addr):
    p = spawn(["ip", "netns", "exec", ns, os.path.join(BIN, "enchufe-server"), "--host", addr,
               "--port", "7000", "--shutdown-delay", "1.5", "--idle-timeout", "60"],
              stderr=subprocess.PIPE, text=True)
    if not wait_line(p, "Listening on"):
        raise RuntimeError(f"enchufe-server did not start in {ns}")
    return p


def served_at_stop(p):
    """SIGTERM, then the 'Stopped after N requests' count."""
    p.send_signal(signal.SIGTERM)
    out = p.stderr.read()
    p.wait(30)
    m = re.search(r"Stopped after (\d+) requests?", out)
    return int(m.group(1)) if m else 0


def haproxy_part(work, nss):
    hosts = [nss.host(i + 1, 77) for i in range(3)]
    instances = [start_instance(ns, addr) for ns, addr in hosts]
    port = free_port()
    hap = spawn(["haproxy", "-db", "-f", haproxy_config(work, port, [a for _, a in hosts])],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for i in range(3):
        if wait_status(work, f"enchufe{i + 1}", "UP") is None:
            raise RuntimeError(f"HAProxy never marked enchufe{i + 1} up")
    # Rolling restart under load.
    ka = spawn(bench_cmd("127.0.0.1", port, 20, "-c", "50"), stdout=subprocess.PIPE, text=True)
    pc = spawn(bench_cmd("127.0.0.1", port, 20, "-c", "20", "--mode", "per-conn"),
               stdout=subprocess.PIPE, text=True)
    served = []
    time.sleep(2)
    for i, (ns, addr) in enumerate(hosts):
        served.append(served_at_stop(instances[i]))
        instances[i] = start_instance(ns, addr)
        wait_status(work, f"enchufe{i + 1}", "UP")
        time.sleep(0.5)
    a, b = bench_result(ka), bench_result(pc)
    check("HAProxy, rolling SIGTERM restart of all three under load: zero failed requests",
          a["failed"] == 0 and b["failed"] == 0,
          f"keep-alive c=50: {a['requests']} requests, {a['failed']} failed, {a['retried']} "
          f"retried; per-conn c=20: {b['requests']} requests, {b['failed']} failed "
          f"({json.dumps({k: v for k, v in {**a['errors'], **b['errors']}.items() if v})})")
    check("HAProxy, every instance served traffic", all(n > 0 for n in served),
          f"requests served by each before its restart: {served}")
    # One instance killed under load.
    ka = spawn(bench_cmd("127.0.0.1", port, 8, "-c", "50"), stdout=subprocess.PIPE, text=True)
    time.sleep(2)
    instances[0].send_signal(signal.SIGKILL)
    instances[0].wait()
    down_after = wait_status(work, "enchufe1", "DOWN", 15)
    a = bench_result(ka)
    instances[0] = start_instance(*hosts[0])
    up_after = wait_status(work, "enchufe1", "UP", 15)
    check("HAProxy, an instance SIGKILLed under load is taken out, then rejoins",
          down_after is not None and up_after is not None and a["failed"] <= 50,
          f"marked down {down_after if down_after is None else f'{down_after:.2f} s'} after the "
          f"kill; {a['failed']} of {a['requests'] + a['failed']} requests failed (in flight on "
          f"it), {a['retried']} retried; up again {up_after if up_after is None else f'{up_after:.2f} s'} "
          f"after its restart")
    stop(hap)
    for p in instances:
        stop(p)


# --- SO_REUSEPORT ---------------------------------------------------------------

def reuseport_round(ns, migrate):
    run("ip", "netns", "exec", ns, "sysctl", "-q", "-w", f"net.ipv4.tcp_migrate_req={migrate}")
    def start():
        p = spawn(["ip", "netns", "exec", ns, os.path.join(BIN, "enchufe-server"), "--port",
                   "7100", "--reuseport"], stderr=subprocess.PIPE, text=True)
        if not wait_line(p, "Listening on"):
            raise RuntimeError("a --reuseport server did not start")
        return p
    servers = [start() for _ in range(3)]
    # 3,000 one-shot connections: each process should serve some.
    first = bench_result(spawn(bench_cmd("127.0.0.1", 7100, 60, "-n", "3000", "-c", "30",
                                         "--mode", "per-conn", ns=ns),
                               stdout=subprocess.PIPE, text=True))
    counts = [served_at_stop(p) for p in servers]
    servers = [start() for _ in range(3)]
    load = spawn(bench_cmd("127.0.0.1", 7100, 8, "-c", "30", "--mode", "per-conn", ns=ns),
                 stdout=subprocess.PIPE, text=True)
    for i in range(3):
        time.sleep(1.5)
        served_at_stop(servers[i])
        servers[i] = start()
    r = bench_result(load)
    for p in servers:
        stop(p)
    return counts, first, r


def reuseport_part(nss):
    ns = nss.alone("rp")
    counts, first, off = reuseport_round(ns, 0)
    check("--reuseport: three processes on one port each served some of 3,000 connections",
          all(c > 0 for c in counts) and first["failed"] == 0 and sum(counts) == 3000,
          f"served {counts}, {first['failed']} failed")
    _, _, on = reuseport_round(ns, 1)
    check("--reuseport: a rolling SIGTERM with net.ipv4.tcp_migrate_req=1 loses nothing",
          on["failed"] == 0,
          f"tcp_migrate_req=1: {on['requests']} requests, {on['failed']} failed; "
          f"tcp_migrate_req=0: {off['requests']} requests, {off['failed']} failed "
          f"({json.dumps({k: v for k, v in off['errors'].items() if v})})")


def main():
    global BIN
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default="bin")
    ap.add_argument("--only", choices=["activation", "haproxy", "reuseport"])
    args = ap.parse_args()
    BIN = args.bin
    work = tempfile.mkdtemp(prefix="enchufe-scaling-")
    nss = Namespaces()
    try:
        if args.only in (None, "activation"):
            activation_basic(work)
            activation_restart()
        if args.only in (None, "haproxy", "reuseport") and os.geteuid() != 0:
            check("network namespaces", False, "cannot run here: creating network namespaces "
                  "needs root (CAP_NET_ADMIN)")
        else:
            if args.only in (None, "haproxy"):
                haproxy_part(work, nss)
            if args.only in (None, "reuseport"):
                reuseport_part(nss)
    except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError) as e:
        check("the run itself", False, str(e))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        nss.delete()
        subprocess.run(["rm", "-rf", work])
    print(f"scaling: {results['passed']} passed, {results['failed']} failed")
    return 1 if results["failed"] or not results["passed"] else 0


if __name__ == "__main__":
    sys.exit(main())
