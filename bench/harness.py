"""What the Python scripts around enchufe share: starting and stopping an
enchufe-server by its PID, and the protocol's framing (a 2-byte length, a
JSON header, the content), written from docs/protocol.md.

    sys.path.insert(0, <this directory>); import harness
"""
import json
import os
import re
import signal
import socket
import struct
import subprocess
import time


def start_server(bin_dir, *args, port=0, env=None):
    """enchufe-server with args, on port (0: any), with env added to the
    environment; returns (process, the port it listens on) once it says
    so."""
    proc = subprocess.Popen([os.path.join(bin_dir, "enchufe-server"), "--port", str(port), *args],
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **env} if env else None)
    for _ in range(10):
        line = proc.stderr.readline()
        m = re.search(r"Listening on .*:(\d+)( \(TLS\))?$", line.strip())
        if m:
            return proc, int(m.group(1))
    proc.kill()
    proc.wait()
    raise SystemExit(f"{bin_dir}/enchufe-server {' '.join(args)} did not start")


def start_with_tls(bin_dir, certs, *args):
    """enchufe-server with a port in clear and a TLS port (certs: the
    directory tools/make_test_certs.sh made); returns (process, clear port,
    TLS port) once it says it listens on both."""
    proc = subprocess.Popen([os.path.join(bin_dir, "enchufe-server"), "--port", "0",
                             "--tls-port", "0", "--tls-cert", f"{certs}/server.pem",
                             "--tls-key", f"{certs}/server.key", *args],
                            stderr=subprocess.PIPE, text=True)
    ports = {}
    for _ in range(10):
        m = re.search(r"Listening on .*:(\d+)( \(TLS\))?$", proc.stderr.readline().strip())
        if m:
            ports["tls" if m.group(2) else "clear"] = int(m.group(1))
        if len(ports) == 2:
            return proc, ports["clear"], ports["tls"]
    proc.kill()
    proc.wait()
    raise RuntimeError(f"{bin_dir}/enchufe-server with --tls-port did not start")


def stop_server(proc):
    """SIGTERM, wait, and return the server's own count of answered
    requests (its last line), or None."""
    proc.send_signal(signal.SIGTERM)
    out = proc.stderr.read()
    proc.wait(30)
    m = re.search(r"Stopped after (\d+) requests?", out)
    return int(m.group(1)) if m else None


def cpu_seconds(pid):
    """A process's CPU time so far, user and system, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def answered(bin_dir, port):
    """The requests enchufe-server has answered so far (its stats answer;
    the stats request itself is counted after it is answered)."""
    out = subprocess.run([os.path.join(bin_dir, "enchufe-cli"), "--port", str(port), "--json",
                          "stats"], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise SystemExit(f"cannot read the server's stats: {out.stderr.strip()}")
    return json.loads(out.stdout)["result"]["requests"]["total"]


def start_redis(env=None):
    """redis-server on loopback, no persistence, with env added to the
    environment; returns (process, port) once it listens."""
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--daemonize", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, **env} if env else None)
    if wait_listening(port):
        return proc, port
    proc.kill()
    proc.wait()
    raise SystemExit("redis-server did not start")


def redis_commands(port):
    """Redis's own count of commands processed (the INFO asking is one)."""
    out = subprocess.run(["redis-cli", "-p", str(port), "INFO", "stats"],
                         capture_output=True, text=True, timeout=10).stdout
    return int(re.search(r"total_commands_processed:(\d+)", out).group(1))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, seconds=5):
    """True once something accepts connections on 127.0.0.1:port."""
    for _ in range(int(seconds * 20)):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def start_stunnel(certs, backend_port, workdir):
    """stunnel4 terminating TLS (certs/server.pem and .key) in front of
    127.0.0.1:backend_port; returns (process, its TLS port)."""
    port = free_port()
    conf = os.path.join(workdir, "stunnel.conf")
    with open(conf, "w") as f:
        f.write(f"foreground = yes\npid =\n[enchufe]\naccept = 127.0.0.1:{port}\n"
                f"connect = 127.0.0.1:{backend_port}\ncert = {certs}/server.pem\n"
                f"key = {certs}/server.key\n")
    proc = subprocess.Popen(["stunnel4", conf], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    if not wait_listening(port):
        proc.kill()
        proc.wait()
        raise SystemExit("stunnel4 did not start")
    return proc, port


def frame(content, ctype="text/json", cenc="utf-8"):
    """One message: content is bytes."""
    header = json.dumps({"byteorder": "little", "content-type": ctype,
                         "content-encoding": cenc, "content-length": len(content)}).encode()
    return struct.pack(">H", len(header)) + header + content


def search(value):
    return frame(json.dumps({"action": "search", "value": value}, ensure_ascii=False).encode())


def read_frame(sock):
    """Reads one whole message; returns its content."""
    def exactly(n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data
    header = json.loads(exactly(struct.unpack(">H", exactly(2))[0]))
    return exactly(header["content-length"])
