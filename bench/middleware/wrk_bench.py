"""Throughput of the demo shop's /hello/ under gunicorn, driven by wrk, with
each middleware variant side by side in one run.

Variants: no middleware; cpuledger at 0%, 1% and 100% sampling; the peers
django-prometheus and django-silk. gunicorn (1 sync worker, with the recorder's
sender thread) is pinned to CPU 0; wrk and the cpuledger server to CPU 1; the variants are interleaved over several rounds and the
median requests/s of each is reported with its ratio to no middleware.

Targets (issue 4): cpuledger at 1% within 1% of no middleware; at 100%
better than django-prometheus.

Usage: python bench/middleware/wrk_bench.py [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHOP = ROOT / "examples" / "shop"
BIN = Path(sys.executable).parent

VARIANTS = [
    ("no middleware", {"SHOP_MIDDLEWARE": "none"}),
    ("cpuledger 0%", {"SHOP_MIDDLEWARE": "cpuledger", "CPULEDGER_SAMPLE_RATE": "0"}),
    ("cpuledger 1%", {"SHOP_MIDDLEWARE": "cpuledger", "CPULEDGER_SAMPLE_RATE": "0.01"}),
    ("cpuledger 100%", {"SHOP_MIDDLEWARE": "cpuledger", "CPULEDGER_SAMPLE_RATE": "1"}),
    ("django-prometheus", {"SHOP_MIDDLEWARE": "prometheus"}),
    ("django-silk", {"SHOP_MIDDLEWARE": "silk"}),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(url, proc, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError("server exited")
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} not ready")


def run_variant(env, seconds: int) -> float:
    port = free_port()
    proc = subprocess.Popen(["taskset", "-c", "0", str(BIN / "gunicorn"), "shop.wsgi", "-w", "1",
                             "-b", f"127.0.0.1:{port}", "--chdir", str(SHOP), "--log-level", "error"],
                            env=env)
    try:
        url = f"http://127.0.0.1:{port}/hello/"
        wait(url, proc)
        subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c4", "-d1s", url], capture_output=True)  # warm-up
        out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c4", f"-d{seconds}s", url],
                             capture_output=True, text=True, check=True).stdout
        return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if not shutil.which("wrk"):
        print("wrk not found (scripts/bootstrap installs it)")
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="cpuledger-wrk-"))
    # A real cpuledger server for the sampled variants to send to.
    cpl_port = free_port()
    # On wrk's core, so the app's core runs only the app (and its recorder).
    cpl = subprocess.Popen(["taskset", "-c", "1", str(BIN / "cpuledger"), "serve", "--port", str(cpl_port), "--data-dir", str(tmp / "cpl")],
                           stderr=subprocess.DEVNULL)
    base_env = {**os.environ, "SHOP_DB": str(tmp / "shop.sqlite3"), "PYTHONPATH": str(SHOP),
                "CPULEDGER_SERVER_URL": f"http://127.0.0.1:{cpl_port}", "CPULEDGER_COMMIT": "bench"}
    try:
        wait(f"http://127.0.0.1:{cpl_port}/healthz", cpl)
        for mw in ("none", "silk", "prometheus"):
            subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=SHOP, check=True,
                           env={**base_env, "SHOP_MIDDLEWARE": mw})
        results: dict[str, list[float]] = {name: [] for name, _ in VARIANTS}
        for r in range(args.rounds):
            for name, extra in VARIANTS:
                rps = run_variant({**base_env, **extra}, args.seconds)
                results[name].append(rps)
                print(f"round {r + 1}: {name:<20} {rps:10.0f} req/s", flush=True)
        med = {name: statistics.median(v) for name, v in results.items()}
        base = med["no middleware"]
        print(f"\n{'variant':<20} {'req/s (median)':>15} {'vs none':>9}   target")
        targets = {
            "cpuledger 1%": lambda: f"within 1% of none: {'met' if med['cpuledger 1%'] >= 0.99 * base else 'MISSED'}",
            "cpuledger 100%": lambda: ("better than django-prometheus: "
                                       + ("met" if med["cpuledger 100%"] > med["django-prometheus"] else "MISSED")),
        }
        for name, _ in VARIANTS:
            t = targets.get(name, lambda: "-")()
            print(f"{name:<20} {med[name]:15.0f} {med[name] / base:9.3f}   {t}")
    finally:
        cpl.send_signal(signal.SIGTERM)
        cpl.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
