#!/usr/bin/env python3
"""enchufe's TLS against clients and servers nobody here wrote.

- Python's ssl module wrapping a stdlib socket speaks the tutorial's
  protocol to enchufe-server --tls-only (TLS 1.3 and 1.2; TLS 1.1 is
  refused), verifying the server's certificate and name.
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

Every process is stopped by its PID. Standard library only; needs the
test PKI of tools/make_test_certs.sh.

    python3 tools/test_tls.py [--bin bin] [--certs build/tls]
"""
import argparse
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))
import harness  # noqa: E402
from harness import read_frame, search  # noqa: E402

RING = "In the caves beneath the Misty Mountains. \U0001f48d"
passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok: {what}")
    else:
        failed += 1
        print(f"FAIL: {what}")


def server_args(certs, *extra):
    return ["--tls-only", "--tls-cert", f"{certs}/server.pem", "--tls-key",
            f"{certs}/server.key", *extra]


def start(bin_dir, certs, *extra):
    """enchufe-server --tls-only; returns (process, TLS port)."""
    proc, _ = harness.start_server(bin_dir, *server_args(certs, *extra), "--tls-port", "0")
    return proc, _


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


def test_python_ssl(port, certs):
    warnings.simplefilter("ignore", DeprecationWarning)  # naming TLS 1.1 to refuse it
    with python_client(port, certs) as s:
        check(s.version() == "TLSv1.3" and served(s, 20),
              f"Python ssl, {s.version()} {s.cipher()[0]}: 20 searches answered")
    with python_client(port, certs, maximum_version=ssl.TLSVersion.TLSv1_2) as s:
        check(s.version() == "TLSv1.2" and served(s, 5),
              f"Python ssl limited to TLS 1.2: {s.version()} {s.cipher()[0]}")
    try:
        with python_client(port, certs, minimum_version=ssl.TLSVersion.TLSv1_1,
                           maximum_version=ssl.TLSVersion.TLSv1_1) as s:
            check(False, "TLS 1.1 must be refused")
    except (ssl.SSLError, OSError) as e:
        check(True, f"TLS 1.1 refused ({type(e).__name__})")


def s_client(port, certs, *args):
    # stdin stays open a moment so that s_client reads the TLS 1.3 ticket.
    p = subprocess.run(f"sleep 0.5 | openssl s_client -connect 127.0.0.1:{port} "
                       f"-CAfile {certs}/ca.pem -verify_hostname localhost "
                       f"-verify_return_error {' '.join(args)}",
                       shell=True, capture_output=True, text=True, timeout=20)
    return p.stdout + p.stderr


def test_s_client(port, certs):
    with tempfile.TemporaryDirectory() as d:
        sess = os.path.join(d, "session.pem")
        out = s_client(port, certs, "-sess_out", sess)
        check("Verify return code: 0 (ok)" in out and "New, TLSv1.3" in out,
              "openssl s_client: New, TLSv1.3, Verify return code: 0 (ok)")
        out = s_client(port, certs, "-sess_in", sess)
        check("Reused, TLSv1.3" in out, "openssl s_client -sess_in: Reused, TLSv1.3")
        out = s_client(port, certs, "-tls1_2")
        check("New, TLSv1.2" in out or "Protocol  : TLSv1.2" in out,
              "openssl s_client -tls1_2: TLSv1.2")


def test_client_certificates(bin_dir, certs):
    proc, port = start(bin_dir, certs, "--tls-ca", f"{certs}/ca.pem",
                       "--tls-auth-clients", "yes")
    try:
        with python_client(port, certs, cert="client") as s:
            check(served(s, 3), "client certificate from the CA: served")
        try:
            with python_client(port, certs, cert="stranger") as s:
                served(s)
            check(False, "a certificate from another CA must be refused")
        except (ssl.SSLError, OSError) as e:
            check(True, f"certificate from another CA: refused ({type(e).__name__})")
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
            check(out.returncode == 0 and f"Got result: {RING}" in out.stdout,
                  "enchufe-cli --tls through stunnel4: "
                  f"{out.stdout.strip() or out.stderr.strip()}")
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
            check(served(s, 2), f"a socket named 'tls' handed over by systemd-socket-activate: "
                                f"served in {s.version()}")
    finally:
        p.terminate()
        p.wait(30)


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
        check(fds1 == fds0, "descriptors back where they were after 1000 failed handshakes")
        check(rss1 - rss0 < 4096, "RSS grew by less than 4 MiB")
        with python_client(port, certs) as s:
            check(served(s), "and a good client is still served")
    finally:
        harness.stop_server(proc)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="bin")
    ap.add_argument("--certs", default="build/tls")
    args = ap.parse_args()
    certs = os.path.abspath(args.certs)
    proc, port = start(args.bin, certs)
    try:
        test_python_ssl(port, certs)
        test_s_client(port, certs)
    finally:
        harness.stop_server(proc)
    test_client_certificates(args.bin, certs)
    test_stunnel(args.bin, certs)
    test_socket_activation(args.bin, certs)
    test_failed_handshakes(args.bin, certs)
    print(f"tls: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
