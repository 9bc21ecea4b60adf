"""The TLS rows of `make bench` (run.py calls tls_rows).

One enchufe-server serves both ports (--port and --tls-port, the test
certificate of tools/make_test_certs.sh), so clear and TLS are measured
on the same server with the same generator; stunnel4 terminates TLS in
front of that server's port in clear with the same certificate (the way
TLS is added to a plain server today). The pairs a ratio compares run in
alternating rounds, and each figure is the median of its rounds, so that
the machine's drift falls on both sides alike. Then 10,000 TLS keep-alive
connections on 16 workers, with the server's RSS read while they are all
open. Every process is stopped by its PID.
"""
import json
import os
import re
import statistics
import subprocess
import tempfile
import time

import harness

ROUNDS = 3


def tls_args(certs):
    return ["--tls", "--tls-ca", f"{certs}/ca.pem", "--tls-server-name", "localhost"]


def cpu_ms(pid):
    """User + system CPU time of a process so far, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def median_run(bench, runs, pid):
    """runs: {name: (port, args)}; ROUNDS alternating rounds; the result
    whose rate is the median of each name's rounds, with the server's CPU
    time per request in that round (pid: the server's; the generator runs
    on the same cores, and its own TLS work takes its share of them)."""
    results = {name: [] for name in runs}
    for _ in range(ROUNDS):
        for name, (port, args) in runs.items():
            before = cpu_ms(pid)
            r = bench(port, *args)
            n = r["requests"] + r["in_flight"]
            r["server_cpu_us_per_request"] = round((cpu_ms(pid) - before) * 1000 / n, 1) \
                if n else None
            results[name].append(r)
    out = {}
    for name, rs in results.items():
        mid = statistics.median(r["requests_per_s"] for r in rs)
        out[name] = min(rs, key=lambda r: abs(r["requests_per_s"] - mid))
    return out


def ten_thousand(run, bin_dir, certs, tls_port, pid):
    """10,000 TLS keep-alive connections: every one must be answered; the
    server's RSS is read once they are all open."""
    secs = max(30, 6 * run.s)
    big = subprocess.Popen([os.path.join(bin_dir, "enchufe-bench"), "--port", str(tls_port),
                            "-d", str(secs), "-c", "10000", "-t", "2", "--timeout", "60",
                            "--json", "-q", *tls_args(certs)], stdout=subprocess.PIPE, text=True)
    rss = 0
    for _ in range(int(secs * 10)):  # the peak, sampled while the run lasts
        time.sleep(0.1)
        with open(f"/proc/{pid}/status") as f:
            rss = max(rss, int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)))
        if big.poll() is not None:
            break
    out, _ = big.communicate(timeout=secs + 180)
    run.extra["tls_rss_kib_at_10000"] = rss
    run.add("enchufe TLS keep-alive search, 10,000 conns", json.loads(out), "enchufe")


def tls_rows(run, bench, bin_dir, certs):
    """bench(port, *args) runs enchufe-bench for run.s seconds, 50 conns."""
    proc, clear, tls = harness.start_with_tls(bin_dir, certs, "--workers", "16")
    work = tempfile.mkdtemp(prefix="enchufe-bench-stunnel-")
    tunnel = None
    try:
        tunnel, st_port = harness.start_stunnel(certs, clear, work)
        t = tls_args(certs)
        keep = median_run(bench, {
            "enchufe keep-alive search, clear (TLS server)": (clear, []),
            "enchufe keep-alive search, native TLS": (tls, [*t]),
            "enchufe keep-alive search, stunnel4 TLS in front": (st_port, [*t]),
        }, proc.pid)
        conn = median_run(bench, {
            "enchufe per-conn search, clear (TLS server)": (clear, ["--mode", "per-conn"]),
            "enchufe per-conn search, native TLS full handshakes": (tls, [*t, "--mode",
                                                                         "per-conn"]),
            "enchufe per-conn search, native TLS resumed": (tls, [*t, "--mode", "per-conn",
                                                                  "--tls-resume"]),
            "enchufe per-conn search, stunnel4 TLS full handshakes": (st_port, [*t, "--mode",
                                                                               "per-conn"]),
        }, proc.pid)
        for name, result in {**keep, **conn}.items():
            run.add(name, result, "enchufe")
        ten_thousand(run, bin_dir, certs, tls, proc.pid)
    finally:
        if tunnel:
            tunnel.terminate()
            tunnel.wait(30)
        harness.stop_server(proc)
        for f in os.listdir(work):
            os.unlink(os.path.join(work, f))
        os.rmdir(work)


def tls_ratios(rps, get):
    def cpu(name):
        r = get(name)
        return r["raw"].get("server_cpu_us_per_request") or float("nan") if r else float("nan")
    return [
        (cpu("enchufe keep-alive search, native TLS") /
         cpu("enchufe keep-alive search, clear (TLS server)"),
         "server CPU per request, TLS / clear keep-alive (us: "
         f"{cpu('enchufe keep-alive search, native TLS')} / "
         f"{cpu('enchufe keep-alive search, clear (TLS server)')})", "what TLS costs the server"),
        (rps("enchufe keep-alive search, native TLS") /
         rps("enchufe keep-alive search, clear (TLS server)"),
         "TLS / clear keep-alive, same server, 50 conns (medians of 3 alternating rounds)",
         ">= 0.75"),
        (rps("enchufe keep-alive search, native TLS") /
         rps("enchufe keep-alive search, stunnel4 TLS in front"),
         "native TLS / stunnel4 in front, keep-alive, 50 conns", ">= 1.3"),
        (rps("enchufe per-conn search, native TLS full handshakes") /
         rps("enchufe per-conn search, stunnel4 TLS full handshakes"),
         "native TLS / stunnel4 in front, per-conn full handshakes, 50 conns", ">= 1.0"),
        (rps("enchufe per-conn search, native TLS resumed") /
         rps("enchufe per-conn search, native TLS full handshakes"),
         "per-conn TLS resumed / full handshakes, 50 conns", ">= 1.5"),
    ]
