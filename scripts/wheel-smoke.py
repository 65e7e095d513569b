"""scripts/wheel-smoke.py — what a user does first with an installed wheel.

Run by scripts/check-wheels with the python of a fresh venv that has only the
wheel installed, inside a root that has none of the build's libraries:
imports cpuledger, runs `cpuledger --version` and `cpuledger doctor`, starts
`cpuledger serve` on loopback, sends one record through the WSGI middleware
from another process (it flushes at exit), finds it on the server, and
profiles a small script with `python -m cpuledger.profile`. Exits non-zero,
saying which step failed.
"""

import json
import os
import pstats
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import cpuledger

bin_dir = Path(sys.executable).parent
cli = str(bin_dir / "cpuledger")
work = Path(tempfile.mkdtemp(prefix="cpuledger-smoke-"))


def step(name: str, cmd: list[str]) -> str:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        sys.exit(f"wheel-smoke: {name} failed ({out.returncode}): {out.stdout}{out.stderr}")
    return out.stdout


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)


version = step("cpuledger --version", [cli, "--version"]).strip()
assert version == cpuledger.__version__, (version, cpuledger.__version__)
doctor = json.loads(step("cpuledger doctor", [cli, "doctor", "--json"]))
print(f"wheel-smoke: cpuledger {version}, doctor: ok ({json.dumps(doctor)[:80]}...)")

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
base = f"http://127.0.0.1:{port}"
log = open(work / "serve.log", "w")
server = subprocess.Popen([cli, "serve", "--bind", "127.0.0.1", "--port", str(port),
                           "--data-dir", str(work / "data")], stdout=log, stderr=subprocess.STDOUT)
try:
    deadline = time.monotonic() + 30
    while True:
        if server.poll() is not None:
            sys.exit(f"wheel-smoke: cpuledger serve exited {server.returncode}: "
                     f"{(work / 'serve.log').read_text()}")
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1)
            break
        except OSError:
            if time.monotonic() > deadline:
                sys.exit("wheel-smoke: cpuledger serve never became healthy")
            time.sleep(0.1)

    send = f"""
from wsgiref.util import setup_testing_defaults
from cpuledger.wsgi import CpuLedgerWSGI

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]

mw = CpuLedgerWSGI(app, server_url={base!r}, enabled=True, sample_rate=1.0, service="smoke",
                   commit="v1", spool_dir="", endpoint=lambda environ: "/smoke/")
environ = {{}}
setup_testing_defaults(environ)
result = mw(environ, lambda status, headers: None)
try:
    body = b"".join(result)
finally:
    result.close()  # as a WSGI server does: the request ends here
assert body == b"ok", body
"""
    step("recording one request", [sys.executable, "-c", send])  # flushes at exit
    rows = get_json(base + "/v1/query/breakdown?since=1h&group_by=endpoint")["rows"]
    if [(r["keys"]["endpoint"], r["samples"]) for r in rows] != [("/smoke/", 1)]:
        sys.exit(f"wheel-smoke: expected one /smoke/ sample on the server, got {rows}")
    print("wheel-smoke: serve on loopback, one record sent and stored")
finally:
    server.terminate()
    server.wait(timeout=30)

script = work / "work.py"
script.write_text("def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n\nfib(15)\n")
out = work / "out.pstats"
step("python -m cpuledger.profile", [sys.executable, "-m", "cpuledger.profile", "-s", "cpu",
                                     "-m", "exact", "-o", str(out), "-f", "pstats", str(script)])
calls = {k[2]: v[1] for k, v in pstats.Stats(str(out)).stats.items()}
if calls.get("fib") != 1973:  # fib(15) makes 1973 calls
    sys.exit(f"wheel-smoke: the profile has fib called {calls.get('fib')} times, want 1973")
print("wheel-smoke: python -m cpuledger.profile: fib called 1973 times")
print(f"wheel-smoke: ok (CPython {sys.version.split()[0]})")
