"""A real Prometheus scrapes a running enchufe-server.

Starts enchufe-server with --metrics and Debian's prometheus on loopback
(a temporary storage directory, a 1 s scrape interval), sends a known
number of requests of each kind, and asks Prometheus's HTTP API for
`enchufe_requests_total` by kind (the counts must be exact) and for
histogram_quantile(0.99, ...) of the service-time histogram (it must be
above 0 and of the order of the round trips the client measured for
itself: service time is part of a round trip, but on a busy machine the
server's thread can be descheduled inside its last send after the client
already has the answer, and the estimate is interpolated within a
bucket; so no more than the client's slowest round trip plus 2 ms, a
scheduling slice on a busy two-core machine).
Both processes are stopped by their PIDs. Standard library and pytest.
"""
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
import urllib.parse
import urllib.request

import pytest
from harness import frame, read_frame

LOAD = {"search_hit": 40, "search_miss": 25, "invalid_action": 10, "binary": 15, "stats": 5}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def requests_of(kind):
    if kind == "binary":
        return frame(b"getsomething", "binary/custom-client-binary-type", "binary")
    action, value = {"search_hit": ("search", "ring"), "search_miss": ("search", "nobody"),
                     "invalid_action": ("nope", "x"), "stats": ("stats", "")}[kind]
    return frame(json.dumps({"action": action, "value": value}).encode())


def send_load(port):
    """Sends LOAD on one connection; returns the slowest round trip (s)."""
    slowest = 0.0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        for kind, n in LOAD.items():
            req = requests_of(kind)
            for _ in range(n):
                t0 = time.perf_counter()
                s.sendall(req)
                read_frame(s)
                slowest = max(slowest, time.perf_counter() - t0)
    return slowest


def api(prom_port, query):
    url = (f"http://127.0.0.1:{prom_port}/api/v1/query?"
           + urllib.parse.urlencode({"query": query}))
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)["data"]["result"]


def start(cmd, **kw):
    return subprocess.Popen(cmd, **kw)


def stop(proc):
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for(what, fn, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = fn()
        if value is not None:
            return value
        time.sleep(0.25)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def scraped(bin_dir, tmp_path):
    """enchufe-server with --metrics, and a Prometheus scraping it every
    second: (server port, Prometheus port)."""
    if not shutil.which("prometheus"):
        pytest.fail("prometheus is not installed (make test installs it)")
    work = str(tmp_path)
    server = prom = None
    try:
        server = start([os.path.join(bin_dir, "enchufe-server"), "--port", "0", "--metrics",
                        "127.0.0.1:0"], stderr=subprocess.PIPE, text=True)
        port = metrics = None
        for _ in range(10):
            line = server.stderr.readline()
            if line.startswith("Listening on"):
                port = int(line.strip().rsplit(":", 1)[1])
            if line.startswith("Metrics on"):
                metrics = line.strip().split("http://")[1].split("/")[0]
                break
        prom_port = free_port()
        with open(os.path.join(work, "prometheus.yml"), "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "scrape_configs:\n  - job_name: enchufe\n    static_configs:\n"
                    f"      - targets: ['{metrics}']\n")
        prom = start(["prometheus", f"--config.file={work}/prometheus.yml",
                      f"--storage.tsdb.path={work}/data",
                      f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def up():
            try:
                r = api(prom_port, 'up{job="enchufe"}')
                return True if r and r[0]["value"][1] == "1" else None
            except OSError:
                return None
        wait_for("Prometheus to scrape enchufe-server", up, 60)
        yield port, prom_port
    finally:
        stop(prom)
        stop(server)


def test_a_real_prometheus_scrapes_exact_counts_and_a_sane_p99(scraped):
    port, prom_port = scraped
    slowest = send_load(port)

    def counts():
        r = api(prom_port, "enchufe_requests_total")
        got = {x["metric"]["kind"]: int(float(x["value"][1])) for x in r}
        # Every kind sent, exactly; every other kind (health...) none.
        want = {k: LOAD.get(k, 0) for k in got}
        return got if got == want and all(k in got for k in LOAD) else None
    got = wait_for("the scrape after the load to count it exactly", counts, 30)
    print(f"enchufe_requests_total by kind, exact: {got}")
    q = "histogram_quantile(0.99, sum by (le) (enchufe_request_duration_seconds_bucket))"
    r = api(prom_port, q)
    p99 = float(r[0]["value"][1]) if r else 0.0
    assert 0 < p99 <= slowest + 0.002, \
        f"{q} = {p99}, the client's slowest round trip {slowest}"
