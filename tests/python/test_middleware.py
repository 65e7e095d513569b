"""The middleware end to end: real apps under real servers (gunicorn with 2
workers, uvicorn), driven over HTTP, reporting to a real `cpuledger serve`;
then the server is queried and the records checked."""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT, ServerProcess, free_port

SHOP = ROOT / "examples" / "shop"
VENV_BIN = Path(sys.executable).parent


def get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_http(url, proc, timeout=60, log: Path | None = None):
    """Bounded poll until `url` answers (any HTTP status); `log`, the server's
    output, goes into the error if it exits first. A request that reached the
    app is waited for, not retried: tests count the probe as one request, and
    a loaded machine can take seconds to answer it (a retry recorded twice)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app server exited {proc.returncode}: {log.read_text() if log else ''}")
        try:
            urllib.request.urlopen(url, timeout=30)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} never answered")


def wait_samples(http, want, where=(), timeout=30, group_by="service"):
    """Poll the server until `want` samples arrived (or the timeout)."""
    from urllib.parse import urlencode

    q = [("since", "1h"), ("group_by", group_by)] + [("where", w) for w in where]
    deadline = time.time() + timeout
    got = -1
    while time.time() < deadline:
        rows = http.get_json("/v1/query/breakdown?" + urlencode(q))["rows"]
        got = sum(r["samples"] for r in rows)
        if got >= want:
            return rows
        time.sleep(0.2)
    raise AssertionError(f"expected {want} samples, server has {got}")


def wait_for_file(directory: Path, pattern: str, timeout=60) -> None:
    """Bounded poll until a file matching `pattern` appears under `directory`."""
    deadline = time.time() + timeout
    while not list(directory.rglob(pattern)):
        assert time.time() < deadline, f"no {pattern} under {directory}"
        time.sleep(0.1)


class Gunicorn:
    def __init__(self, tmp_path, server_url, sample_rate="1.0", extra_env=None, workers=2, preload=False):
        self.port = free_port()
        self.db = tmp_path / "shop.sqlite3"
        self.env = {**os.environ, "SHOP_DB": str(self.db), "CPULEDGER_SERVER_URL": server_url,
                    "CPULEDGER_SAMPLE_RATE": sample_rate, "CPULEDGER_COMMIT": "abc123",
                    "CPULEDGER_BATCH_MAX_DELAY_MS": "200", "PYTHONPATH": str(SHOP), **(extra_env or {})}
        if not self.db.exists():
            subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=SHOP, env=self.env, check=True)
            subprocess.run([sys.executable, "manage.py", "waffle_flag", "new_search", "--everyone", "--create"],
                           cwd=SHOP, env=self.env, check=True, capture_output=True)
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "gunicorn"), "shop.wsgi", "-w", str(workers), "-b", f"127.0.0.1:{self.port}",
             "--chdir", str(SHOP), "--graceful-timeout", "10", "--log-level", "warning"]
            + (["--preload"] if preload else []),
            env=self.env)
        wait_http(self.url + "/hello/", self.proc)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)


@pytest.fixture
def cpl(tmp_path):
    s = ServerProcess(tmp_path / "cpl").start()
    yield s
    s.stop()


def test_django_under_gunicorn_records_every_dimension(tmp_path, cpl):
    app = Gunicorn(tmp_path, cpl.url)
    try:
        # (the readiness probe already fetched /hello/ once)
        plan = [("/hello/", 200, 10), ("/products/3/", 200, 8), ("/products/999/", 404, 3),
                ("/boom/", 500, 2), ("/search/?q=product", 200, 4), ("/nope/", 404, 2)]
        n = 0
        for path, want, count in plan:
            for i in range(count):
                status, _ = get(app.url + path, {"Cookie": f"sessionid=s{n % 5}", "X-Request-ID": f"r{n}"})
                assert status == want, path
                n += 1
        http = cpl.http()
        rows = wait_samples(http, n, group_by="endpoint,status")
    finally:
        app.stop()
    got = {(r["keys"]["endpoint"], r["keys"]["status"]): r for r in rows}
    assert {k: r["samples"] for k, r in got.items()} == {
        ("/hello/", "200"): 11, ("/products/<int:id>/", "200"): 8, ("/products/<int:id>/", "404"): 3,
        ("/boom/", "500"): 2, ("/search/", "200"): 4, ("<unmatched>", "404"): 2}
    prod = got[("/products/<int:id>/", "200")]
    assert prod["db_calls_mean"] >= 1 and prod["db_us_mean"] > 0
    assert prod["cache_calls_mean"] >= 1 and prod["cache_us_mean"] > 0
    assert got[("/hello/", "200")]["db_calls_mean"] == 0
    assert prod["cpu_ns"]["mean"] > 0
    # Dimensions: commit from the environment, the waffle flag, hashed users.
    from urllib.parse import urlencode

    commits = http.get_json("/v1/query/breakdown?" + urlencode({"since": "1h", "group_by": "commit,host"}))["rows"]
    assert {r["keys"]["commit"] for r in commits} == {"abc123"}
    flags = http.get_json("/v1/query/breakdown?" + urlencode(
        {"since": "1h", "group_by": "flag:new_search", "where": "endpoint=/search/"}))["rows"]
    assert [(r["keys"]["flag:new_search"], r["samples"]) for r in flags] == [("on", 4)]
    users = http.get_json("/v1/query/breakdown?" + urlencode({"since": "1h", "group_by": "user"}))["rows"]
    keys = {r["keys"]["user"] for r in users} - {""}  # the probe had no session
    assert len(keys) == 5 and all(len(k) == 16 and "s1" not in k for k in keys)  # hashed, never raw


def test_sample_rate_quarter_is_statistically_right(tmp_path, cpl):
    # --preload: the app, and so the recorder, is made in the master and
    # inherited by the forked workers, which must each start their own sender.
    app = Gunicorn(tmp_path, cpl.url, sample_rate="0.25", preload=True)
    n = 600
    try:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(lambda i: get(app.url + "/hello/")[0], range(n)))
        assert statuses == [200] * n
    finally:
        app.stop()  # workers flush at exit: everything sampled is in the store after this
    http = cpl.http()
    rows = http.get_json("/v1/query/breakdown?since=1h&group_by=endpoint")["rows"]
    sampled = sum(r["samples"] for r in rows)
    # Binomial(600, 0.25): mean 150, sd 10.6; 4.5 sd either side.
    assert 102 <= sampled <= 198, sampled
    assert rows[0]["est_requests"] == pytest.approx(sampled / 0.25)
    # Requests come from the unsampled tallies; these anonymous requests had
    # no user keys, so no active-user sketch rode with them.
    eff = http.get_json("/v1/query/efficiency?since=1h&service=shop")["services"][0]
    assert eff["from_tallies"] is True and eff["users_from_tallies"] is False
    assert eff["requests"] == int(eff["requests"]) and 0 < eff["requests"] <= n + 1


def test_server_down_mid_load_loses_nothing_and_duplicates_nothing(tmp_path, cpl):
    spool = tmp_path / "spool"
    app = Gunicorn(tmp_path, cpl.url, extra_env={"CPULEDGER_SPOOL_DIR": str(spool)})
    try:
        sent = 0

        def burst(k):
            nonlocal sent
            for _ in range(k):
                status, _ = get(app.url + "/products/2/", {"X-Request-ID": f"fault-{sent}"})
                assert status == 200
                sent += 1

        burst(60)
        wait_samples(cpl.http(), 60)
        cpl.stop()
        burst(80)  # the app keeps answering while the server is down
        wait_for_file(spool, "*.batch")  # ...and spools what it cannot send
        cpl.start()
        burst(60)
        products = ["endpoint=/products/<int:id>/"]  # not the readiness probe
        wait_samples(cpl.http(), sent, where=products, timeout=60)
    finally:
        app.stop()  # nothing is in flight once the workers have exited
    rows = wait_samples(cpl.http(), sent, where=products)
    assert sum(r["samples"] for r in rows) == sent == 200  # exactly once


def test_asgi_attributes_cpu_to_the_request_that_spent_it(tmp_path, cpl):
    port = free_port()
    env = {**os.environ, "CPULEDGER_SERVER_URL": cpl.url, "PYTHONPATH": str(ROOT / "tests" / "python" / "apps")}
    proc = subprocess.Popen([str(VENV_BIN / "uvicorn"), "starlette_app:app", "--port", str(port),
                             "--log-level", "warning", "--loop", "asyncio"], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/items/1", proc)
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            # Sent together; /light says whether /heavy was in flight beside it.
            h = pool.submit(get, base + "/heavy?steps=40")
            l = pool.submit(get, base + "/light?steps=40")
            assert h.result()[0] == 200 and l.result()[0] == 200
            assert json.loads(l.result()[1])["saw_heavy"]  # they did overlap
        assert get(base + "/spawn")[0] == 200
        assert get(base + "/items/7")[0] == 200
        rows = wait_samples(cpl.http(), 5, group_by="endpoint")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    by = {r["keys"]["endpoint"]: r for r in rows}
    assert set(by) == {"/heavy", "/light", "/spawn", "/items/{item_id:int}"}
    heavy, light = by["/heavy"]["cpu_ns"]["mean"], by["/light"]["cpu_ns"]["mean"]
    # /light was in flight while /heavy burned CPU; a start-to-end
    # thread reading would bill it as much. Step metering bills it its own:
    # ~1/50 of /heavy's (116 ms against 2.1 ms with a bench running beside).
    # With a third of /heavy's work, 8.8x was once seen on a loaded VM: the
    # light request's fixed cost grows most under load.
    assert heavy > 10 * light, (heavy, light)
    # The child task's work (10 burns, ~25x a bare request here) is billed to
    # /spawn: well above /items, which does nothing. Not measured against
    # /heavy: once, on a loaded VM, /heavy was billed 8x its usual CPU (236 ms
    # against ~30 ms) while /spawn's 7.9 ms was as usual.
    assert by["/spawn"]["cpu_ns"]["mean"] > 5 * by["/items/{item_id:int}"]["cpu_ns"]["mean"]


def test_flask_under_wsgi(tmp_path, cpl):
    port = free_port()
    env = {**os.environ, "CPULEDGER_SERVER_URL": cpl.url, "PYTHONPATH": str(ROOT / "tests" / "python" / "apps")}
    proc = subprocess.Popen([str(VENV_BIN / "gunicorn"), "flask_app:app", "-w", "1", "-b", f"127.0.0.1:{port}",
                             "--log-level", "warning"], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/users/1", proc)
        for i in range(4):
            assert get(base + f"/users/{i}", {"X-User": f"u{i % 2}"})[0] == 200
        assert get(base + "/missing")[0] == 404
        assert get(base + "/fail")[0] == 500
        rows = wait_samples(cpl.http(), 7, group_by="endpoint,status")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    got = {(r["keys"]["endpoint"], r["keys"]["status"]): r for r in rows}
    assert got[("/users/<int:user_id>", "200")]["samples"] == 5  # the probe + 4
    assert got[("/users/<int:user_id>", "200")]["db_calls_mean"] == 1
    assert got[("/missing", "404")]["samples"] == 1
    assert got[("/fail", "500")]["samples"] == 1


@pytest.mark.parametrize("settings, needle", [
    ({"SERVER_URL": "http://127.0.0.1:8750", "SAMPLE_RTE": 0.1}, "SAMPLE_RTE"),
    ({"SERVER_URL": "not a url"}, "SERVER_URL"),
    ({"SERVER_URL": "http://127.0.0.1:8750", "SAMPLE_RATE": 1.5}, "SAMPLE_RATE"),
    ({"SERVER_URL": "http://127.0.0.1:8750", "ENDPOINT_SAMPLE_RATES": {"/a/": -1}}, "ENDPOINT_SAMPLE_RATES"),
    ({"SERVER_URL": "http://127.0.0.1:8750", "FLAGS": "no.such.module.fn"}, "FLAGS"),
    ({"SERVER_URL": "http://127.0.0.1:8750", "PROFILE_MIN_PER_MINUTE": -1}, "PROFILE_MIN_PER_MINUTE"),
])
def test_bad_settings_fail_fast_naming_the_key(settings, needle):
    code = f"""
import django
from django.conf import settings
settings.configure(CPULEDGER={settings!r}, INSTALLED_APPS=[], ROOT_URLCONF=[])
django.setup()
from cpuledger.django import CpuLedgerMiddleware
CpuLedgerMiddleware(lambda r: None)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "ImproperlyConfigured" in r.stderr and needle in r.stderr, r.stderr


def run_python(code: str, *args: str, env=None) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter (Django settings are per process), outside pytest."""
    clean = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120,
                       env={**clean, **(env or {})})
    assert r.returncode == 0, r.stderr
    return r


_DJANGO = """
import django
from django.conf import settings
from django.http import HttpResponse
from django.urls import path
urlpatterns = [path("", lambda request: HttpResponse("ok"))]
settings.configure(CPULEDGER={"SERVER_URL": "http://127.0.0.1:9", "SPOOL_DIR": "", "SAMPLE_RATE": 1.0, **EXTRA},
                   INSTALLED_APPS=[], ROOT_URLCONF=__name__, ALLOWED_HOSTS=["*"],
                   MIDDLEWARE=["cpuledger.django.CpuLedgerMiddleware"])
django.setup()
"""


def test_one_recorder_per_process_and_one_per_forked_child():
    code = _DJANGO.replace("**EXTRA", '"ENABLED": True') + """
import json, os
from django.test import Client
from cpuledger import _runtime
for _ in range(20):  # each Client builds its own middleware instance
    assert Client().get("/").status_code == 200
parent = next(iter(_runtime._recorders.values())).sender_id
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    assert Client().get("/").status_code == 200
    child = [rec.sender_id for rec in _runtime._recorders.values()]
    os.write(w, json.dumps(child).encode())
    os._exit(0)
os.waitpid(pid, 0)
child = json.loads(os.read(r, 1000))
print(json.dumps({"recorders": len(_runtime._recorders), "parent": parent, "child": child}))
"""
    out = json.loads(run_python(code).stdout)
    assert out["recorders"] == 1 and len(out["child"]) == 1
    assert out["child"][0] != out["parent"]  # the child sends as itself


@pytest.mark.parametrize("argv, extra, recording", [
    ([], {}, True),
    (["manage.py", "test"], {}, False),                      # Django's test runner
    (["manage.py", "test"], {"ENABLED": True}, True),        # ...unless asked
    (["manage.py", "runserver"], {"ENABLED": False}, False),
])
def test_django_does_not_record_under_its_test_runner_unless_enabled(argv, extra, recording):
    code = "import sys\nsys.argv = " + repr(argv or ["gunicorn"]) + "\n" + _DJANGO.replace(
        "**EXTRA", "**" + repr(extra)) + """
from cpuledger.django import CpuLedgerMiddleware
print(CpuLedgerMiddleware(lambda r: None).rt.recording)
"""
    assert run_python(code).stdout.strip() == str(recording)


def test_django_test_environment_counts_as_a_test_run():
    code = _DJANGO.replace("**EXTRA", "") + """
from django.test.utils import setup_test_environment
setup_test_environment()  # what DiscoverRunner and pytest-django do
from cpuledger.django import CpuLedgerMiddleware
print(CpuLedgerMiddleware(lambda r: None).rt.recording)
"""
    assert run_python(code).stdout.strip() == "False"


def test_wsgi_and_asgi_do_not_record_in_the_pytest_process_unless_enabled():
    from cpuledger.asgi import CpuLedgerASGI
    from cpuledger.wsgi import CpuLedgerWSGI

    for cls in (CpuLedgerWSGI, CpuLedgerASGI):
        assert not cls(lambda *a: None, server_url="http://127.0.0.1:9").rt.recording
        assert cls(lambda *a: None, server_url="http://127.0.0.1:9", spool_dir="", enabled=True).rt.recording


@pytest.mark.parametrize("xdg", [True, False])
def test_spool_defaults_to_the_users_cache_and_says_so(tmp_path, xdg):
    env = {"HOME": str(tmp_path / "home"), "XDG_CACHE_HOME": str(tmp_path / "xdg") if xdg else ""}
    want = (tmp_path / "xdg" if xdg else tmp_path / "home" / ".cache") / "cpuledger" / "spool"
    code = """
import logging, sys
if sys.argv[1] == "info":
    logging.basicConfig(level=logging.INFO)
from cpuledger.wsgi import CpuLedgerWSGI
CpuLedgerWSGI(lambda *a: None, server_url="http://127.0.0.1:9", enabled=True).rt.recorder.close(0.1)
"""
    first = run_python(code, "default", env=env)  # no logging set up: only warnings show
    assert f"created the spool directory {want}" in first.stderr and want.is_dir()
    again = run_python(code, "info", env=env)
    assert f"spooling to {want}" in again.stderr
    assert "created the spool directory" not in again.stderr  # it was there already
