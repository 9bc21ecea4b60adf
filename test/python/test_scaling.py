"""Past one process and one machine, tested against the real components.

  activation   systemd-socket-activate hands enchufe-server its socket (TCP
               and Unix); then a restart under load on an inherited socket
               (a holder keeps it open, as systemd does, while the server is
               stopped and started again): no connection refused, no
               request failed.
  haproxy      three instances, each in a network namespace of its own with
               its own address on a veth pair, HAProxy on loopback in
               front with the shipped contrib/haproxy/enchufe.cfg, but
               `retries 0` (HAProxy tries no request again); enchufe-bench
               drives keep-alive and per-conn load through it while every
               instance is restarted in turn (SIGTERM, --shutdown-delay 2
               as the unit file has, drain): HAProxy sees each one DOWN,
               in its stats socket, well before the listener closes, and
               not one request fails (the client's own retries of a
               request sent on a keep-alive connection as the server
               closed it are reported apart); every instance served. Then
               one instance is SIGKILLed: how many requests failed, how
               long until HAProxy marked it down, and that it rejoins.
  reuseport    three processes on one port (--reuseport) in a namespace of
               its own; each served some of 3,000 connections; a rolling
               SIGTERM, with net.ipv4.tcp_migrate_req off and then on (set
               only inside that namespace): the resets counted for each.

Needs root (network namespaces), haproxy, iproute2 and systemd's
systemd-socket-activate; `make test` installs them. Everything it starts
is stopped by PID, and the namespaces and links it made are deleted.
"""
import json
import os
import re
import signal
import socket
import struct
import subprocess
import time

import harness
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
BIN = None  # the binaries' directory, set by the bin fixture
SHUTDOWN_DELAY = 2  # as contrib/enchufe.service has it
procs = []


@pytest.fixture(scope="module", autouse=True)
def bin_and_cleanup(bin_dir):
    """The binaries' directory for every helper here; at the end, every
    process this module started is stopped by its PID."""
    global BIN
    BIN = bin_dir
    yield
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return str(tmp_path_factory.mktemp("scaling"))


@pytest.fixture(scope="module")
def nss():
    if os.geteuid() != 0:
        pytest.fail("network namespaces cannot be made here: it needs root (CAP_NET_ADMIN)")
    n = Namespaces()
    yield n
    n.delete()


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

def test_activation_hands_over_tcp_and_unix_sockets(work):
    port = free_port()
    p = spawn(["systemd-socket-activate", "-l", f"127.0.0.1:{port}", "--fdname=enchufe",
               os.path.join(BIN, "enchufe-server")], stderr=subprocess.PIPE, text=True)
    wait_line(p, "Listening on 127.0.0.1")  # the tool's own line
    ok = search_ok("127.0.0.1", port, timeout=5)
    line = wait_line(p, "handed over by systemd", 5)
    stop(p)
    assert ok and line is not None, \
        f"systemd-socket-activate: a TCP socket handed over, served: {line}"
    path = os.path.join(work, "activated.sock")
    p = spawn(["systemd-socket-activate", "-l", path, os.path.join(BIN, "enchufe-server")],
              stderr=subprocess.PIPE, text=True)
    wait_line(p, "Listening on")
    out = run(os.path.join(BIN, "enchufe-cli"), "--unix", path, "search", "ring",
              check_rc=False)
    stop(p)
    assert out.returncode == 0 and "Misty" in out.stdout, \
        f"systemd-socket-activate: a Unix socket handed over, served: {out.stdout}{out.stderr}"


def start_activated(listener, tag):
    """enchufe-server on an inherited socket, as systemd starts it: the
    socket as fd 3, LISTEN_FDS=1, LISTEN_PID the server's own PID."""
    def child():
        os.dup2(listener.fileno(), 3)
        os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()), LISTEN_FDNAMES=tag)
    p = spawn([os.path.join(BIN, "enchufe-server")], preexec_fn=child, close_fds=False,
              stderr=subprocess.PIPE, text=True)
    if not wait_line(p, "handed over by systemd"):
        pytest.fail("the activated server did not start")
    return p


def test_a_restart_under_load_on_an_inherited_socket_refuses_and_fails_nothing():
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
    print(detail)
    assert a["failed"] == 0 and b["failed"] == 0 and a["requests"] > 0 and b["requests"] > 0, \
        detail


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
    # HAProxy tries no request again: a request lost in a restart shows.
    cfg, n = re.subn(r"\n    retries \d+\n", "\n    retries 0\n", cfg)
    assert n == 1, "the shipped config sets `retries`"
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
               "--port", "7000", "--shutdown-delay", str(SHUTDOWN_DELAY), "--idle-timeout",
               "60"], stderr=subprocess.PIPE, text=True)
    if not wait_line(p, "Listening on"):
        pytest.fail(f"enchufe-server did not start in {ns}")
    return p


def served_at_stop(p, work=None, name=None, downs=None):
    """SIGTERM, then the 'Stopped after N requests' count. With work and
    name, also the time HAProxy took to see the server DOWN (into downs)."""
    p.send_signal(signal.SIGTERM)
    if downs is not None:
        downs.append(wait_status(work, name, "DOWN", SHUTDOWN_DELAY + 10))
    out = p.stderr.read()
    p.wait(30)
    m = re.search(r"Stopped after (\d+) requests?", out)
    return int(m.group(1)) if m else 0


@pytest.fixture(scope="module")
def haproxy(work, nss):
    """Three instances in namespaces of their own, HAProxy in front with
    the shipped configuration (retries 0); (work, port, hosts, instances)."""
    hosts = [nss.host(i + 1, 77) for i in range(3)]
    instances = [start_instance(ns, addr) for ns, addr in hosts]
    port = free_port()
    hap = spawn(["haproxy", "-db", "-f", haproxy_config(work, port, [a for _, a in hosts])],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for i in range(3):
        if wait_status(work, f"enchufe{i + 1}", "UP") is None:
            pytest.fail(f"HAProxy never marked enchufe{i + 1} up")
    yield work, port, hosts, instances
    stop(hap)
    for p in instances:
        stop(p)


def test_haproxy_rolling_restart_with_retries_0_sees_each_drain_and_fails_nothing(haproxy):
    work, port, hosts, instances = haproxy
    ka = spawn(bench_cmd("127.0.0.1", port, 24, "-c", "50"), stdout=subprocess.PIPE, text=True)
    pc = spawn(bench_cmd("127.0.0.1", port, 24, "-c", "20", "--mode", "per-conn"),
               stdout=subprocess.PIPE, text=True)
    served, downs = [], []
    time.sleep(2)
    for i, (ns, addr) in enumerate(hosts):
        t0 = time.time()
        served.append(served_at_stop(instances[i], work, f"enchufe{i + 1}", downs))
        instances[i] = start_instance(ns, addr)
        wait_status(work, f"enchufe{i + 1}", "UP")
        time.sleep(0.5)
    a, b = bench_result(ka), bench_result(pc)
    detail = (f"keep-alive c=50: {a['requests']} requests, {a['failed']} failed, {a['retried']} "
              f"retried; per-conn c=20: {b['requests']} requests, {b['failed']} failed "
              f"({json.dumps({k: v for k, v in {**a['errors'], **b['errors']}.items() if v})}); "
              f"HAProxy saw each DOWN {[None if d is None else round(d, 2) for d in downs]} s "
              f"after its SIGTERM (the listener closes at {SHUTDOWN_DELAY} s)")
    print(detail)
    assert all(d is not None and d < SHUTDOWN_DELAY for d in downs), \
        f"HAProxy must see the drain before the listener closes: {detail}"
    assert a["failed"] == 0 and b["failed"] == 0, detail
    assert all(n > 0 for n in served), f"requests served by each before its restart: {served}"


def test_haproxy_takes_out_an_instance_killed_under_load_and_it_rejoins(haproxy):
    work, port, hosts, instances = haproxy
    ka = spawn(bench_cmd("127.0.0.1", port, 8, "-c", "50"), stdout=subprocess.PIPE, text=True)
    time.sleep(2)
    instances[0].send_signal(signal.SIGKILL)
    instances[0].wait()
    down_after = wait_status(work, "enchufe1", "DOWN", 15)
    a = bench_result(ka)
    instances[0] = start_instance(*hosts[0])
    up_after = wait_status(work, "enchufe1", "UP", 15)
    detail = (f"marked down {down_after} s after the kill; {a['failed']} of "
              f"{a['requests'] + a['failed']} requests failed (in flight on it), "
              f"{a['retried']} retried; up again {up_after} s after its restart")
    print(detail)
    assert down_after is not None and up_after is not None and a["failed"] <= 50, detail


# --- SO_REUSEPORT ---------------------------------------------------------------

def reuseport_round(ns, migrate):
    run("ip", "netns", "exec", ns, "sysctl", "-q", "-w", f"net.ipv4.tcp_migrate_req={migrate}")
    def start():
        p = spawn(["ip", "netns", "exec", ns, os.path.join(BIN, "enchufe-server"), "--port",
                   "7100", "--reuseport"], stderr=subprocess.PIPE, text=True)
        if not wait_line(p, "Listening on"):
            pytest.fail("a --reuseport server did not start")
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


def test_reuseport_spreads_connections_and_loses_nothing_with_tcp_migrate_req(nss):
    ns = nss.alone("rp")
    counts, first, off = reuseport_round(ns, 0)
    assert all(c > 0 for c in counts) and first["failed"] == 0 and sum(counts) == 3000, \
        f"three processes on one port each serve some of 3,000: served {counts}, " \
        f"{first['failed']} failed"
    _, _, on = reuseport_round(ns, 1)
    detail = (f"tcp_migrate_req=1: {on['requests']} requests, {on['failed']} failed; "
              f"tcp_migrate_req=0: {off['requests']} requests, {off['failed']} failed "
              f"({json.dumps({k: v for k, v in off['errors'].items() if v})})")
    print(detail)
    assert on["failed"] == 0, f"a rolling SIGTERM with tcp_migrate_req=1 loses nothing: {detail}"
