"""bench/ingest/slow_client_bench.py — a normal ingest's latency while 1,000
slow clients hold connections to a real `cpuledger serve` (issue 13: eight
slow clients used to hold all eight httplib workers, and nothing else was
answered), and the server's memory after a burst of large bodies.

The slow clients trickle on for the whole run: half send a header line every
5 s, half a body byte every 2 s, all on loopback. The normal ingest is one
recorder's: a small NDJSON batch POSTed on a kept-alive connection, once
every 20 ms; the same is measured first with no slow clients, side by side.

Printed beside their targets:
  normal ingest latency with 1,000 slow connections: p50, p99 (<= 100 ms)
  the same without them (the baseline)
  server RSS fresh, and after 20 bodies of 30 MiB (< 3x fresh)

Usage: python bench/ingest/slow_client_bench.py [--cpuledger PATH] [--seconds 10] [--slow 1000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import resource
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(exe: str, data: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen([exe, "serve", "--port", str(port), "--data-dir", str(data),
                             "--detect-every", "off",
                             # long deadlines: every slow client stays held for the whole run
                             "--header-timeout", "120s", "--request-timeout", "120s"],
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("cpuledger serve did not start")


def batch(i: int) -> bytes:
    now_us = int(time.time() * 1e6)
    lines = [{"service": "bench", "endpoint": "/e/", "method": "GET", "status": 200, "host": "h",
              "commit": "c1", "start_time_unix_us": now_us - k * 1000, "wall_us": 1000,
              "cpu_ns": 1_000_000 + i + k, "counter_source": "task_clock", "sample_rate": 1.0}
             for k in range(10)]
    return "\n".join(json.dumps(line) for line in lines).encode()


def ingest_latencies(port: int, seconds: float) -> list[float]:
    """Milliseconds per POST /v1/ingest on one kept-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    out = []
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        body = batch(i)
        t0 = time.perf_counter()
        conn.request("POST", "/v1/ingest", body, {"Content-Type": "application/x-ndjson"})
        resp = conn.getresponse()
        resp.read()
        out.append((time.perf_counter() - t0) * 1e3)
        if resp.status != 200:
            raise SystemExit(f"ingest answered {resp.status}")
        i += 1
        time.sleep(0.02)
    conn.close()
    return out


class SlowClients:
    """n connections trickling: even ones a header line every 5 s, odd ones a body byte every 2 s."""

    def __init__(self, port: int, n: int):
        self.socks = []
        for i in range(n):
            s = socket.create_connection(("127.0.0.1", port))
            if i % 2 == 0:
                s.sendall(b"POST /v1/ingest HTTP/1.1\r\nHost: x\r\n")
            else:
                s.sendall(b"POST /v1/ingest HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\n"
                          b"Content-Length: 1000000\r\n\r\n")
            self.socks.append(s)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.trickle, daemon=True)
        self.thread.start()

    def trickle(self):
        tick = 0
        while not self.stop.wait(1.0):
            tick += 1
            for i, s in enumerate(self.socks):
                try:
                    if i % 2 == 0 and tick % 5 == 0:
                        s.sendall(b"X-Slow: %d\r\n" % tick)
                    elif i % 2 == 1 and tick % 2 == 0:
                        s.sendall(b"{")
                except OSError:
                    pass  # cut off by a deadline: that is the server's right

    def close(self):
        self.stop.set()
        self.thread.join()
        for s in self.socks:
            s.close()


def percentile(values: list[float], p: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(p / 100 * len(v)))]


def vm_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cpuledger", default=shutil.which("cpuledger") or "build/cpuledger")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--slow", type=int, default=1000)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_server(args.cpuledger, Path(tmp) / "data")
        try:
            base = ingest_latencies(port, args.seconds / 2)
            slow = SlowClients(port, args.slow)
            try:
                held = ingest_latencies(port, args.seconds)
            finally:
                slow.close()
            print(f"normal ingest latency with {args.slow:,} slow connections: "
                  f"p50 {percentile(held, 50):.1f} ms, p99 {percentile(held, 99):.1f} ms "
                  f"(target <=100 ms; httplib before: never answered)")
            print(f"normal ingest latency with no slow connections:      "
                  f"p50 {percentile(base, 50):.1f} ms, p99 {percentile(base, 99):.1f} ms (baseline)")

            fresh = vm_rss_mib(proc.pid)
            body = b'{"service": "' + b"x" * (30 << 20)

            def send(n):
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                for _ in range(n):
                    conn.request("POST", "/v1/ingest", body, {"Content-Type": "application/x-ndjson"})
                    conn.getresponse().read()
                conn.close()

            threads = [threading.Thread(target=send, args=(5,)) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            # The server gives freed heap back at most every 2 s (malloc_trim):
            # watch it for 5 s and say how long it took.
            done = time.monotonic()
            after = vm_rss_mib(proc.pid)
            while after >= 3 * fresh and time.monotonic() - done < 5:
                time.sleep(0.1)
                after = vm_rss_mib(proc.pid)
            print(f"server RSS: fresh {fresh:.0f} MiB, after 20 bodies of 30 MiB {after:.0f} MiB "
                  f"{time.monotonic() - done:.1f} s later (target < 3x fresh = {3 * fresh:.0f} MiB; "
                  f"httplib before: 630 MB kept)")
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
