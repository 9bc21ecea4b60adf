"""enchufe's TLS against clients and servers nobody here wrote.

- Python's ssl module wrapping a stdlib socket speaks the tutorial's
  protocol to enchufe-server (TLS 1.3 and 1.2), verifying the server's
  certificate and name; openssl s_client offering TLS 1.1 is refused by the
  server with a protocol_version alert, and the server counts it.
- openssl s_client: protocol version, verify result 0, and resumption
  (-sess_out, then -sess_in says "Reused").
- Client certificates: Python with the right certificate is served, one
  from another CA is not.
- stunnel4 terminates TLS in front of a plain enchufe-server: enchufe-cli
  --tls against it (our client against a TLS server we did not write).
- systemd-socket-activate hands over a socket named tls (FileDescriptorName=
  tls in a .socket unit): it is served in TLS.
- 1,000 failed handshakes (bytes in clear, half a ClientHello then close,
  a client that rejects the certificate): the server's open descriptors
  come back to where they were and its RSS grows by less than 4 MiB.

Every process is stopped by its PID. Standard library and pytest; needs
the test PKI of tools/make_test_certs.sh.
"""
import json
import os
import re
import socket
import ssl
import subprocess
import tempfile
import threading
import time

import harness
import pytest
from harness import read_frame, search

RING = "In the caves beneath the Misty Mountains. \U0001f48d"


def server_args(certs, *extra):
    return ["--tls-only", "--tls-cert", f"{certs}/server.pem", "--tls-key",
            f"{certs}/server.key", *extra]


def start(bin_dir, certs, *extra):
    """enchufe-server --tls-only; returns (process, TLS port)."""
    return harness.start_server(bin_dir, *server_args(certs, *extra), "--tls-port", "0")


def start_both(bin_dir, certs):
    """enchufe-server with a port in clear and a TLS port; (proc, clear, tls).
    Its log is read all along: the failed-handshake tests make it long."""
    proc, clear, tls = harness.start_with_tls(bin_dir, certs)
    threading.Thread(target=proc.stderr.read, daemon=True).start()
    return proc, clear, tls


def python_client(port, certs, cert=None, **versions):
    ctx = ssl.create_default_context(cafile=f"{certs}/ca.pem")
    for k, v in versions.items():
        setattr(ctx, k, v)
    if cert:
        ctx.load_cert_chain(f"{certs}/{cert}.pem", f"{certs}/{cert}.key")
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def served(sock, n=1):
    for _ in range(n):
        sock.sendall(search("ring"))
        if read_frame(sock).decode() != '{"result": "%s"}' % RING:
            return False
    return True


@pytest.fixture(scope="module")
def tls_server(bin_dir, certs):
    """enchufe-server with a port in clear (for the stats) and a TLS port."""
    proc, clear, tls_port = start_both(bin_dir, certs)
    yield clear, tls_port
    harness.stop_server(proc)


@pytest.fixture
def port(tls_server):
    return tls_server[1]


def test_python_ssl_tls13(port, certs):
    with python_client(port, certs) as s:
        assert s.version() == "TLSv1.3", s.version()
        assert served(s, 20), f"Python ssl, {s.version()} {s.cipher()[0]}: 20 searches answered"


def test_python_ssl_tls12(port, certs):
    with python_client(port, certs, maximum_version=ssl.TLSVersion.TLSv1_2) as s:
        assert s.version() == "TLSv1.2", s.version()
        assert served(s, 5), f"Python ssl limited to TLS 1.2: {s.cipher()[0]}"


def tls_failures(clear_port, bin_dir, reason):
    out = subprocess.run([f"{bin_dir}/enchufe-cli", "--port", str(clear_port), "--json",
                          "stats"], capture_output=True, text=True, timeout=20).stdout
    return json.loads(out)["result"]["tls"]["failed"][reason]


def test_tls11_is_refused_by_the_server(tls_server, bin_dir):
    """A client that really offers TLS 1.1 (openssl s_client with the
    security level lowered, which Python's OpenSSL 3 will not do) meets
    the server's protocol_version alert, and the server counts it."""
    clear, port = tls_server
    before = tls_failures(clear, bin_dir, "protocol")
    p = subprocess.run(f"sleep 0.3 | openssl s_client -connect 127.0.0.1:{port} -tls1_1 "
                       "-cipher DEFAULT@SECLEVEL=0", shell=True, capture_output=True,
                       text=True, timeout=20)
    out = p.stdout + p.stderr
    assert "alert protocol version" in out, out
    assert "Cipher is (NONE)" in out, f"no session was made: {out}"
    assert tls_failures(clear, bin_dir, "protocol") == before + 1, \
        "the server counts the refused handshake as a protocol failure"


def s_client(port, certs, *args):
    # stdin stays open a moment so that s_client reads the TLS 1.3 ticket.
    p = subprocess.run(f"sleep 0.5 | openssl s_client -connect 127.0.0.1:{port} "
                       f"-CAfile {certs}/ca.pem -verify_hostname localhost "
                       f"-verify_return_error {' '.join(args)}",
                       shell=True, capture_output=True, text=True, timeout=20)
    return p.stdout + p.stderr


def test_s_client(port, certs, tmp_path):
    sess = tmp_path / "session.pem"
    out = s_client(port, certs, "-sess_out", str(sess))
    assert "Verify return code: 0 (ok)" in out and "New, TLSv1.3" in out, out
    out = s_client(port, certs, "-sess_in", str(sess))
    assert "Reused, TLSv1.3" in out, f"openssl s_client -sess_in: {out}"
    out = s_client(port, certs, "-tls1_2")
    assert "New, TLSv1.2" in out or "Protocol  : TLSv1.2" in out, out


def test_client_certificates(bin_dir, certs):
    proc, port = start(bin_dir, certs, "--tls-ca", f"{certs}/ca.pem",
                       "--tls-auth-clients", "yes")
    try:
        with python_client(port, certs, cert="client") as s:
            assert served(s, 3), "client certificate from the CA: served"
        # In TLS 1.3 the server judges the certificate after the client's
        # handshake is over: the refusal comes as an alert on the first read.
        with pytest.raises(ssl.SSLError, match="unknown ca|certificate"):
            with python_client(port, certs, cert="stranger") as s:
                served(s)
    finally:
        harness.stop_server(proc)


def test_stunnel(bin_dir, certs):
    plain, plain_port = harness.start_server(bin_dir)
    tunnel = None
    try:
        with tempfile.TemporaryDirectory() as d:
            tunnel, tls_port = harness.start_stunnel(certs, plain_port, d)
            out = subprocess.run([f"{bin_dir}/enchufe-cli", "--tls", "--tls-ca",
                                  f"{certs}/ca.pem", "--host", "localhost", "--port",
                                  str(tls_port), "search", "ring"],
                                 capture_output=True, text=True, timeout=20)
            assert out.returncode == 0 and f"Got result: {RING}" in out.stdout, \
                f"enchufe-cli --tls through stunnel4: {out.stdout.strip() or out.stderr.strip()}"
    finally:
        if tunnel:
            tunnel.terminate()
            tunnel.wait(10)
        harness.stop_server(plain)


def test_socket_activation(bin_dir, certs):
    port = harness.free_port()
    p = subprocess.Popen(["systemd-socket-activate", "-l", f"127.0.0.1:{port}", "--fdname=tls",
                          f"{bin_dir}/enchufe-server", "--tls-cert", f"{certs}/server.pem",
                          "--tls-key", f"{certs}/server.key"],
                         stderr=subprocess.DEVNULL)
    try:
        harness.wait_listening(port)
        with python_client(port, certs) as s:
            assert served(s, 2), "a socket named 'tls' handed over by systemd-socket-activate"
    finally:
        p.terminate()
        p.wait(30)


def test_socket_activation_without_a_tls_socket_names_what_is_missing(bin_dir, certs):
    """--tls-cert under systemd with no socket named tls (enchufe-tls.socket
    not started): a usage error that says what TLS needs there."""
    port = harness.free_port()
    p = subprocess.Popen(["systemd-socket-activate", "-l", f"127.0.0.1:{port}", "--fdname=plain",
                          f"{bin_dir}/enchufe-server", "--tls-cert", f"{certs}/server.pem",
                          "--tls-key", f"{certs}/server.key"],
                         stderr=subprocess.PIPE, text=True)
    try:
        harness.wait_listening(port)
        # systemd-socket-activate starts the server at the first connection.
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            _, err = p.communicate(timeout=20)
        assert p.returncode == 2, err
        assert "a socket named tls (FileDescriptorName=tls" in err, err
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)


def proc_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def proc_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def fail_handshakes(port, certs, n):
    hello = bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03])
    wrong_ca = ssl.create_default_context(cafile=f"{certs}/other-ca.pem")
    for i in range(n):
        kind = i % 3
        try:
            if kind == 2:  # the client refuses the server's certificate
                raw = socket.create_connection(("127.0.0.1", port), timeout=10)
                try:
                    wrong_ca.wrap_socket(raw, server_hostname="localhost").close()
                except ssl.SSLError:
                    pass
                raw.close()
                continue
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(search("ring") if kind == 0 else hello)
                if kind == 0:
                    s.recv(100)  # the server closes at once
        except OSError:
            pass


def test_failed_handshakes(bin_dir, certs):
    proc, port = start(bin_dir, certs, "--workers", "4")
    try:
        fail_handshakes(port, certs, 99)  # warm up: threads' arenas, OpenSSL's tables
        time.sleep(0.5)
        fds0, rss0 = proc_fds(proc.pid), proc_rss_kib(proc.pid)
        t0 = time.time()
        fail_handshakes(port, certs, 1000)
        took = time.time() - t0
        fds1 = proc_fds(proc.pid)
        for _ in range(100):  # the last closes may still be under way
            if fds1 <= fds0:
                break
            time.sleep(0.05)
            fds1 = proc_fds(proc.pid)
        rss1 = proc_rss_kib(proc.pid)
        print(f"1000 failed handshakes in {took:.1f} s: fds {fds0} -> {fds1}, "
              f"RSS {rss0} -> {rss1} KiB")
        assert fds1 == fds0, "descriptors back where they were after 1000 failed handshakes"
        assert rss1 - rss0 < 4096, f"RSS grew by {rss1 - rss0} KiB, 4 MiB at most"
        with python_client(port, certs) as s:
            assert served(s), "and a good client is still served"
    finally:
        harness.stop_server(proc)


def stats(bin_dir, clear_port):
    out = subprocess.run([f"{bin_dir}/enchufe-cli", "--port", str(clear_port), "--json",
                          "stats"], capture_output=True, text=True, timeout=20).stdout
    return json.loads(out)["result"]


def crowd(bin_dir, certs, port, n, *extra):
    """n TLS keep-alive clients connecting at once (enchufe-bench); its
    JSON report."""
    out = subprocess.run([f"{bin_dir}/enchufe-bench", "--port", str(port), "-c", str(n),
                          "-t", "2", "-d", "6", "--timeout", "30", "--json", "-q", "--tls",
                          "--tls-ca", f"{certs}/ca.pem", "--tls-server-name", "localhost",
                          *extra], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


# 2 MiB of --max-buffered has room for about 70 handshakes under way
# (24 KiB each, more while OpenSSL holds record buffers): 800 clients
# connecting at once are more than ten times that. Before, the poller
# closed the handshakes that had waited longest, the ones the clients
# were about to finish, and none ever finished; now a handshake that
# would not fit waits, not begun, for room.
def test_a_crowd_of_tls_clients_larger_than_the_budget_is_served(bin_dir, certs):
    proc, clear, tls = harness.start_with_tls(bin_dir, certs, "--workers", "16",
                                              "--max-buffered", "2097152")
    threading.Thread(target=proc.stderr.read, daemon=True).start()
    try:
        report = crowd(bin_dir, certs, tls, 800)
        s = stats(bin_dir, clear)
        print(f"800 TLS clients, 2 MiB budget: {report['requests']} answers, "
              f"errors {report['errors']}, {s['tls']['handshakes']} handshakes, "
              f"closed {s['connections']['closed']}")
        assert sum(report["errors"].values()) == 0, report["errors"]
        assert s["tls"]["handshakes"] == 800
        assert s["connections"]["closed"]["shed"] == 0
        assert report["requests"] >= 800
    finally:
        harness.stop_server(proc)


# The same budget beside clients that stall: those that sent half a
# ClientHello never begin a handshake (they cost a socket and an empty
# session, and are left to --read-timeout); those that stall mid-record,
# holding OpenSSL's buffers, are closed to keep the budget; every good
# client is served.
def test_stalled_handshakes_make_room_for_good_ones(bin_dir, certs):
    proc, clear, tls = harness.start_with_tls(bin_dir, certs, "--workers", "16",
                                              "--max-buffered", "2097152")
    threading.Thread(target=proc.stderr.read, daemon=True).start()
    try:
        report = crowd(bin_dir, certs, tls, 50, "--hostile", "half-handshake:300",
                       "--hostile", "tls-stall:300")
        s = stats(bin_dir, clear)
        print(f"50 TLS clients beside 600 stalled handshakes, 2 MiB budget: "
              f"{report['requests']} answers, errors {report['errors']}, "
              f"closed {s['connections']['closed']}")
        hostile = report["hostile"]
        print(f"hostile: {hostile}")
        assert sum(report["errors"].values()) == 0, report["errors"]
        assert report["requests"] >= 50 * 10
        assert hostile["half-handshake"]["closed_by_server"] == 0
        assert hostile["half-handshake"]["open"] == 300
        assert hostile["tls-stall"]["closed_by_server"] > 0
        assert s["connections"]["closed"]["shed"] > 0
    finally:
        harness.stop_server(proc)


class PiecemealClient:
    """A TLS client over a plain socket and memory BIOs, so that the test
    decides how its bytes go out: the ClientHello in pieces, with pauses."""

    def __init__(self, port, certs, pieces, pause):
        ctx = ssl.create_default_context(cafile=f"{certs}/ca.pem")
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.inc, self.out, server_hostname="localhost")
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        hello = self.out.read()
        cuts = [len(hello) * i // pieces for i in range(pieces + 1)]
        for a, b in zip(cuts, cuts[1:]):
            self.sock.sendall(hello[a:b])
            time.sleep(pause)
        self._until(self.tls.do_handshake)

    def _until(self, step):
        for _ in range(1000):  # bounded: a handshake is a few flights
            try:
                result = step()
                self._flush()
                return result
            except ssl.SSLWantReadError:
                self._flush()
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionError("the server closed")
                self.inc.write(data)
        raise AssertionError("no progress")

    def _flush(self):
        pending = self.out.read()
        if pending:
            self.sock.sendall(pending)

    def sendall(self, data):
        self.tls.write(data)
        self._flush()

    def recv(self, n):
        return self._until(lambda: self.tls.read(n))

    def close(self):
        self.sock.close()


# A handshake begins only once the ClientHello has arrived whole: one that
# comes in pieces (the record's header split, then the rest after a
# pause) is waited for, and served, however it is cut.
@pytest.mark.parametrize("pieces", [2, 3, 7])
def test_a_client_hello_sent_in_pieces_is_waited_for_and_served(port, certs, pieces):
    client = PiecemealClient(port, certs, pieces, pause=0.15)
    try:
        assert served(client, 3)
    finally:
        client.close()
