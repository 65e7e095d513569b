"""Per-request overhead of the cpuledger middleware in microseconds, measured
in-process: the demo shop's /hello/ through Django's WSGI handler, with no
middleware, cpuledger unsampled (rate 0) and sampled (rate 1), and
django-prometheus as the peer. Each variant runs in its own interpreter (Django
settings are per process); the figure is the median of several timed loops.

Usage: python bench/middleware/inprocess_bench.py [--requests 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHOP = ROOT / "examples" / "shop"

CHILD = r"""
import io, json, os, sys, time
sys.path.insert(0, os.environ["SHOP_DIR"])
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
from django.core.wsgi import get_wsgi_application
app = get_wsgi_application()
environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/hello/", "SERVER_NAME": "x", "SERVER_PORT": "80",
           "wsgi.input": io.BytesIO(b""), "wsgi.url_scheme": "http", "QUERY_STRING": ""}
def start_response(status, headers, exc_info=None):
    pass
def once():
    body = app(dict(environ), start_response)
    for _ in body: pass
    body.close()
n = int(sys.argv[1])
for _ in range(2000): once()
loops = []
for _ in range(7):
    t = time.perf_counter()
    for _ in range(n // 7): once()
    loops.append((time.perf_counter() - t) / (n // 7) * 1e6)
print(json.dumps(sorted(loops)[3]))
"""

VARIANTS = [
    ("no middleware", {"SHOP_MIDDLEWARE": "none"}),
    ("cpuledger unsampled", {"SHOP_MIDDLEWARE": "cpuledger", "CPULEDGER_SAMPLE_RATE": "0"}),
    ("cpuledger sampled", {"SHOP_MIDDLEWARE": "cpuledger", "CPULEDGER_SAMPLE_RATE": "1"}),
    ("django-prometheus", {"SHOP_MIDDLEWARE": "prometheus"}),
]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=20000)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="cpuledger-inproc-")
    env = {**os.environ, "SHOP_DIR": str(SHOP), "SHOP_DB": os.path.join(tmp, "db.sqlite3"),
           # No server: records queue and drop; the request path is what is measured.
           "CPULEDGER_SERVER_URL": "http://127.0.0.1:9", "CPULEDGER_COMMIT": "bench"}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=SHOP, env={**env, "SHOP_MIDDLEWARE": "none"},
                   check=True)
    us = {}
    for name, extra in VARIANTS:
        out = subprocess.run([sys.executable, "-c", CHILD, str(args.requests)], env={**env, **extra},
                             capture_output=True, text=True, check=True).stdout
        us[name] = json.loads(out.strip().splitlines()[-1])
    base = us["no middleware"]
    print(f"{'variant':<22} {'us/request':>10} {'overhead us':>12}")
    for name, _ in VARIANTS:
        print(f"{name:<22} {us[name]:10.1f} {us[name] - base:12.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
