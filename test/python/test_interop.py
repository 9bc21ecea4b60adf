#!/usr/bin/env python3
"""Interoperability test: an independent implementation of the enchufe
protocol, written from docs/protocol.md with the standard library only.

It plays the tutorial's original programs against ours:
  - the original app client (one request, read one response, close)
    against enchufe-server;
  - the original app server (answer one request, then close) and the
    original echo servers for enchufe-cli.

Every socket is on loopback with a timeout; every process started here is
stopped by its PID, and must stop cleanly on SIGTERM.

It deliberately shares no code with the rest of the project's Python
(bench/harness.py): an implementation of its own is the point.
"""
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading

import pytest

TIMEOUT = 10
SEARCH = {
    "morpheus": "Follow the white rabbit. \U0001f430",
    "ring": "In the caves beneath the Misty Mountains. \U0001f48d",
    "\U0001f436": "\U0001f43e Playing ball! \U0001f3d0",
}


def json_encode(obj):
    # What the original writes: ", " and ": " separators, raw UTF-8.
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def frame(content_bytes, content_type, content_encoding):
    header = json_encode({
        "byteorder": sys.byteorder,
        "content-type": content_type,
        "content-encoding": content_encoding,
        "content-length": len(content_bytes),
    })
    return struct.pack(">H", len(header)) + header + content_bytes


def read_message(sock, buf=b""):
    """Reads one framed message the way the original does: recv(4096)
    into a buffer until the proto-header, header and content are there.
    Returns the header, the content and any bytes after the message."""
    need = 2
    header = None
    while True:
        if header is None and len(buf) >= 2:
            hlen = struct.unpack(">H", buf[:2])[0]
            if len(buf) >= 2 + hlen:
                header = json.loads(buf[2:2 + hlen].decode("utf-8"))
                for key in ("byteorder", "content-length", "content-type",
                            "content-encoding"):
                    if key not in header:
                        raise ValueError(f"missing required header {key!r}")
                need = 2 + hlen + header["content-length"]
        if header is not None and len(buf) >= need:
            return header, buf[2 + hlen:need], buf[need:]
        data = sock.recv(4096)
        if not data:
            raise RuntimeError("Peer closed.")
        buf += data


def original_client_request(port, request_bytes, chunk=None):
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        if chunk:
            for i in range(0, len(request_bytes), chunk):
                s.sendall(request_bytes[i:i + chunk])
        else:
            s.sendall(request_bytes)
        header, content, _ = read_message(s)
        return header, content


def search_request(action, value):
    return frame(json_encode({"action": action, "value": value}), "text/json", "utf-8")


def start_server(bin_dir, *args):
    proc = subprocess.Popen([os.path.join(bin_dir, "enchufe-server"), "--port", "0", *args],
                            stderr=subprocess.PIPE, text=True)
    for _ in range(10):
        line = proc.stderr.readline()
        if "Listening on" in line:
            # Keep draining stderr so the server never blocks on a full pipe.
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, int(line.strip().rsplit(":", 1)[1])
    proc.kill()
    raise RuntimeError("server did not start")


@pytest.fixture(scope="module")
def ctx(bin_dir):
    """An app server and an echo server for the module; each must stop
    cleanly when it is over."""
    app, app_port = start_server(bin_dir)
    echo, echo_port = start_server(bin_dir, "--mode", "echo")
    try:
        yield {"bin": bin_dir, "app": app_port, "echo": echo_port}
        for proc in (app, echo):
            stop_server(proc)
    finally:
        for proc in (app, echo):
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def stop_server(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("server did not stop on SIGTERM")
    assert code == 0, f"server exited {code} after SIGTERM"


# --- the original client against enchufe-server ------------------------------

def test_original_client_searches(ctx):
    for value, answer in list(SEARCH.items()) + [("neo", "No match for 'neo'.")]:
        header, content = original_client_request(ctx["app"], search_request("search", value))
        assert header["content-type"] == "text/json", header
        assert header["content-encoding"] == "utf-8", header
        assert header["byteorder"] in ("little", "big"), header
        assert content == json_encode({"result": answer}), content
        assert json.loads(content.decode(header["content-encoding"]))["result"] == answer


def test_original_client_reads_the_header_as_python_writes_it(ctx):
    with socket.create_connection(("127.0.0.1", ctx["app"]), timeout=TIMEOUT) as s:
        s.sendall(search_request("search", "ring"))
        raw = b""
        while len(raw) < 2:
            raw += s.recv(4096)
        hlen = struct.unpack(">H", raw[:2])[0]
        while len(raw) < 2 + hlen:
            raw += s.recv(4096)
        header = json.loads(raw[2:2 + hlen])
        assert raw[2:2 + hlen] == json_encode({
            "byteorder": header["byteorder"], "content-type": "text/json",
            "content-encoding": "utf-8", "content-length": header["content-length"]})


def test_original_client_invalid_action(ctx):
    _, content = original_client_request(ctx["app"], search_request("find", "ring"))
    assert json.loads(content)["result"] == "Error: invalid action 'find'.", content


def test_original_client_binary(ctx):
    req = frame(bytes("get" + "somethingelse", "utf-8"), "binary/custom-client-binary-type",
                "binary")
    header, content = original_client_request(ctx["app"], req)
    assert header["content-type"] == "binary/custom-server-binary-type", header
    assert header["content-encoding"] == "binary", header
    assert content == b"First 10 bytes of request: getsomethi", content


def test_request_in_three_byte_pieces(ctx):
    _, content = original_client_request(ctx["app"], search_request("search", "morpheus"), 3)
    assert json.loads(content)["result"] == SEARCH["morpheus"]


def test_malformed_header_gets_a_framed_error(ctx):
    header = json_encode({"byteorder": "little", "content-type": "text/json"})
    _, content = original_client_request(ctx["app"], struct.pack(">H", len(header)) + header)
    answer = json.loads(content)
    assert answer["error"] == "bad-header", answer
    assert answer["result"].startswith("Error: "), answer


def test_one_connection_many_requests(ctx):
    with socket.create_connection(("127.0.0.1", ctx["app"]), timeout=TIMEOUT) as s:
        s.sendall(b"".join(search_request("search", v) for v in ("ring", "x") * 10))
        rest = b""
        for i in range(20):
            _, content, rest = read_message(s, rest)
            expected = SEARCH["ring"] if i % 2 == 0 else "No match for 'x'."
            assert json.loads(content)["result"] == expected


def test_echo_client_and_multiconn_client(ctx):
    with socket.create_connection(("127.0.0.1", ctx["echo"]), timeout=TIMEOUT) as s:
        s.sendall(b"Hello, world")
        data = b""
        while len(data) < 12:
            data += s.recv(1024)
        assert data == b"Hello, world"
    messages = [b"Message 1 from client.", b"Message 2 from client."]
    socks = [socket.create_connection(("127.0.0.1", ctx["echo"]), timeout=TIMEOUT)
             for _ in range(5)]
    for s in socks:
        for m in messages:
            s.sendall(m)
    for s in socks:
        data = b""
        while len(data) < 44:
            chunk = s.recv(1024)
            assert chunk, "echo server closed early"
            data += chunk
        assert data == b"".join(messages)
        s.close()


# --- enchufe-cli against the original servers ---------------------------------

def serve_original_app(listener, count):
    """The original server's behaviour: one request, one response, close."""
    for _ in range(count):
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(TIMEOUT)
            header, content, _ = read_message(conn)
            if header["content-type"] == "text/json":
                request = json.loads(content.decode(header["content-encoding"]))
                if request.get("action") == "search":
                    query = request.get("value")
                    answer = SEARCH.get(query) or f"No match for '{query}'."
                else:
                    answer = f"Error: invalid action '{request.get('action')}'."
                conn.sendall(frame(json_encode({"result": answer}), "text/json", "utf-8"))
            else:
                conn.sendall(frame(b"First 10 bytes of request: " + content[:10],
                                   "binary/custom-server-binary-type", "binary"))


def serve_original_echo(listener, count):
    for _ in range(count):
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(TIMEOUT)
            while True:
                data = conn.recv(1024)
                if not data:
                    break
                conn.sendall(data)


def run_cli(ctx, port, *args):
    return subprocess.run([os.path.join(ctx["bin"], "enchufe-cli"), "--port", str(port),
                           "--timeout", "5", *args],
                          capture_output=True, timeout=30)


def with_python_server(target, count, fn):
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)
    port = listener.getsockname()[1]
    t = threading.Thread(target=target, args=(listener, count), daemon=True)
    t.start()
    try:
        fn(port)
    finally:
        t.join(TIMEOUT)
        listener.close()


def test_cli_against_original_app_server(ctx):
    def check(port):
        for value, answer in list(SEARCH.items()) + [("trinity", "No match for 'trinity'.")]:
            r = run_cli(ctx, port, "search", value)
            assert r.returncode == 0, r
            assert r.stdout.decode() == f"Got result: {answer}\n", r.stdout
        r = run_cli(ctx, port, "frob", "nicate")
        assert r.returncode == 0, r
        assert r.stdout == b"Got response: b'First 10 bytes of request: frobnicate'\n", r.stdout
    with_python_server(serve_original_app, 5, check)


def test_cli_echo_and_multiconn_against_original_echo_server(ctx):
    def check(port):
        r = run_cli(ctx, port, "echo", "Hello, world")
        assert r.returncode == 0 and r.stdout == b"Received b'Hello, world'\n", r
        r = run_cli(ctx, port, "multiconn", "2")
        assert r.returncode == 0, r
        assert b"2 of 2 connections got every byte back" in r.stdout, r.stdout
    with_python_server(serve_original_echo, 3, check)
