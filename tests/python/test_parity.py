"""The same settings on Django, Flask (WSGI) and Starlette (ASGI) give the same
sampling, profiling, dimensions and failure behaviour.

Each app (tests/python/apps/parity_*.py, one set of routes written three
times) is served by a real server — gunicorn for Django and Flask, uvicorn
for Starlette — and driven over HTTP; the records are read back from a real
`cpuledger serve` through its query API. The settings reach every app as the
same JSON ($CPULEDGER_PARITY). COVERED maps every setting of the settings
table to the test that exercises it, and a test holds it to the table."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import pytest

from conftest import ROOT, ServerProcess, free_port
from test_middleware import VENV_BIN, wait_for_file, wait_http, wait_samples

from cpuledger import _native
from cpuledger._config import COUNTER_SOURCES, PROFILE_MODES, PROFILE_SOURCES, SETTINGS

APPS = ROOT / "tests" / "python" / "apps"
TOKEN = "parity-token"


@dataclass(frozen=True)
class Framework:
    name: str
    slash: str              # Django's routes end in "/", the others' do not
    item_endpoint: str      # the pattern of /items/<id>, as each router writes it

    def path(self, p: str) -> str:
        return p if p == "/" or p.startswith("/static/") else p + self.slash

    def endpoint(self, p: str) -> str:
        return {"/": "/", "/boom": "/boom" + self.slash, "/work": "/work" + self.slash,
                "/items": self.item_endpoint, "/static": "static", "/nope": "<unmatched>"}[p]

    def command(self, port: int) -> list[str]:
        if self.name == "starlette":
            return [str(VENV_BIN / "uvicorn"), "parity_starlette:app", "--port", str(port), "--log-level",
                    "warning", "--loop", "asyncio"]
        module = {"django": "parity_django:application", "flask": "parity_flask:app"}[self.name]
        return [str(VENV_BIN / "gunicorn"), module, "-w", "1", "-b", f"127.0.0.1:{port}", "--log-level",
                "warning", "--graceful-timeout", "10"]


FRAMEWORKS = [
    Framework("django", "/", "/items/<int:id>/"),
    Framework("flask", "", "/items/<int:id>"),
    Framework("starlette", "", "/items/{id:int}"),
]
STARLETTE = FRAMEWORKS[2]


@pytest.fixture(params=FRAMEWORKS, ids=lambda f: f.name)
def fw(request) -> Framework:
    return request.param


class _KeepRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


_NO_REDIRECTS = urllib.request.build_opener(_KeepRedirects)


class App:
    """A parity app under its real server, with cpuledger settings `settings`."""

    def __init__(self, tmp_path: Path, fw: Framework, settings: dict, env=None):
        self.fw = fw
        self.port = free_port()
        self.log = tmp_path / f"{fw.name}-{self.port}.log"
        full_env = {**os.environ, "PYTHONPATH": str(APPS), "CPULEDGER_PARITY": json.dumps(settings),
                    **(env or {})}
        self.proc = subprocess.Popen(fw.command(self.port), env=full_env, cwd=APPS,
                                     stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        wait_http(self.url + fw.path("/nope"), self.proc, log=self.log)  # one request: the probe

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, headers=None):
        """(status, body) of one request; redirects are answers, not followed."""
        req = urllib.request.Request(self.url + self.fw.path(path), headers=headers or {})
        try:
            with _NO_REDIRECTS.open(req, timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def stop(self) -> str:
        """Stop the server (its workers flush their recorders on the way out); the log."""
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=60)
        return self.log.read_text()


@pytest.fixture
def cpl(tmp_path):
    s = ServerProcess(tmp_path / "cpl", token=TOKEN).start()
    yield s
    s.stop()


def base_settings(cpl_url: str, **more) -> dict:
    return {"ENABLED": True, "SERVER_URL": cpl_url, "TOKEN": TOKEN, "SERVICE": "parity", "SPOOL_DIR": "",
            "BATCH_MAX_DELAY_MS": 100, **more}


def breakdown(http, group_by: str, *where: str) -> dict:
    q = [("since", "1h"), ("group_by", group_by)] + [("where", w) for w in where]
    rows = http.get_json("/v1/query/breakdown?" + urlencode(q))["rows"]
    return {tuple(r["keys"][k] for k in group_by.split(",")): r for r in rows}


def metric(http, name: str) -> float:
    status, body = http.request("GET", "/metrics")
    assert status == 200
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def draws(ids, salt: str) -> list[float]:
    """The middleware's per-request draw, recomputed from the request ids."""
    return [int(_native.hash_user(i, salt), 16) / float(1 << 64) for i in ids]


# --- endpoints and dimensions ------------------------------------------------

# (path, endpoint key for Framework.endpoint, status, requests)
PLAN = [("/", "/", 302, 2), ("/items/3", "/items", 200, 3), ("/boom", "/boom", 500, 1),
        ("/static/app.css", "/static", 200, 2), ("/nope", "/nope", 404, 1), ("/work", "/work", 200, 2)]


def test_endpoints_and_dimensions(tmp_path, cpl, fw):
    settings = base_settings(cpl.url, SAMPLE_RATE=1.0, HOST="h1", CLUSTER="c1", REGION="r1", COMMIT="c0ffee",
                             FLAGS="parity_common.flags", USER_KEY="parity_common.user_key", USER_SALT="pepper",
                             BATCH_MAX_RECORDS=1, QUEUE_CAPACITY=64, COUNTER_SOURCE="thread_cputime")
    app = App(tmp_path, fw, settings)
    try:
        n = 1  # the readiness probe
        for path, _, status, count in PLAN:
            for i in range(count):
                headers = {"X-User": f"u{n % 2}", "X-Flag": "on" if path == "/work" else "off"}
                got, body = app.get(path, headers)
                assert got == status, (path, body)
                n += 1
        _, body = app.get("/work")
        n += 1
        assert json.loads(body)["counter_source"] == "thread_cputime"  # COUNTER_SOURCE, in the serving thread
        http = cpl.http()
        wait_samples(http, n)
    finally:
        app.stop()
    got = {k: r["samples"] for k, r in breakdown(http, "endpoint,status").items()}
    want = {(fw.endpoint(key), str(status)): count for _, key, status, count in PLAN}
    want[(fw.endpoint("/nope"), "404")] += 1
    want[(fw.endpoint("/work"), "200")] += 1
    assert got == want
    dims = breakdown(http, "service,host,cluster,region,commit")
    assert list(dims) == [("parity", "h1", "c1", "r1", "c0ffee")]
    flags = breakdown(http, "flag:checkout", f"endpoint={fw.endpoint('/work')}")
    assert {k[0]: r["samples"] for k, r in flags.items()} == {"on": 2, "off": 1}
    users = set(k[0] for k in breakdown(http, "user")) - {""}
    assert users == {_native.hash_user("u0", "pepper"), _native.hash_user("u1", "pepper")}
    work = breakdown(http, "endpoint")[(fw.endpoint("/work"),)]
    assert work["db_calls_mean"] == 1 and work["cpu_ns"]["mean"] > 0  # span("db") in the view
    # BATCH_MAX_RECORDS=1: no batch carried two records.
    assert metric(http, "cpuledger_ingest_batches_total") >= metric(http, "cpuledger_ingest_records_total") >= n
    assert metric(http, "cpuledger_client_dropped_records_total") == 0  # QUEUE_CAPACITY 64 held them


# --- sampling ----------------------------------------------------------------


def test_sampling_follows_request_ids_and_endpoint_rates(tmp_path, cpl, fw):
    settings = base_settings(cpl.url, SAMPLE_RATE=0.3, REQUEST_ID_HEADER="X-Trace",
                             ENDPOINT_SAMPLE_RATES={fw.endpoint("/items"): 1.0, "/": 0.0})
    ids = [f"trace-{i}" for i in range(60)]
    app = App(tmp_path, fw, settings)
    try:
        for i in ids:
            # X-Request-ID is the same on all: were REQUEST_ID_HEADER ignored,
            # all or none of /work would be sampled.
            assert app.get("/work", {"X-Trace": i, "X-Request-ID": "same"})[0] == 200
        for i in ids[:10]:
            assert app.get("/items/5", {"X-Trace": i})[0] == 200
            assert app.get("/", {"X-Trace": i})[0] == 302
    finally:
        app.stop()  # flushed: everything sampled is in the store now
    http = cpl.http()
    rows = breakdown(http, "endpoint")
    expected_work = sum(u < 0.3 for u in draws(ids, "cpuledger-sampling"))
    assert 0 < expected_work < len(ids)
    assert rows[(fw.endpoint("/work"),)]["samples"] == expected_work
    assert rows[(fw.endpoint("/items"),)]["samples"] == 10
    assert (fw.endpoint("/"),) not in rows
    # Each record carries its endpoint's rate, so estimates scale back up.
    assert rows[(fw.endpoint("/work"),)]["est_requests"] == pytest.approx(expected_work / 0.3)
    assert rows[(fw.endpoint("/items"),)]["est_requests"] == pytest.approx(10)


# --- profiles ----------------------------------------------------------------


@pytest.mark.parametrize("mode, source, unit", [("exact", "cpu", "cpu_ns"), ("fast", "wall", None)])
def test_profiles(tmp_path, cpl, fw, mode, source, unit):
    settings = base_settings(cpl.url, SAMPLE_RATE=1.0, PROFILE_RATE=0.5, PROFILE_MODE=mode, PROFILE_SOURCE=source)
    ids = [f"p-{i}" for i in range(16)]
    app = App(tmp_path, fw, settings)
    try:
        for i in ids:
            assert app.get("/work", {"X-Request-ID": i})[0] == 200
    finally:
        log = app.stop()
    http = cpl.http()
    wait_samples(http, len(ids), where=[f"endpoint={fw.endpoint('/work')}"])
    fns = functions(http, fw.endpoint("/work"))
    assert "cpuledger: internal error" not in log
    expected = sum(u < 0.5 for u in draws(ids, "cpuledger-profiling"))
    assert 0 < expected < len(ids)
    assert fns["profiled_requests"] == expected  # PROFILE_RATE, decided by the request id
    names = {f["name"] for f in fns["functions"]}
    hot = next(f for f in fns["functions"] if f["name"] == "parity_hot_function")
    assert hot["calls"] == 1  # per profiled request
    # exact mode sees C builtins (sorted); fast mode folds them into callers.
    assert ("<built-in method builtins.sorted>" in names) == (mode == "exact"), names
    if unit:
        assert fns["unit"] == unit  # PROFILE_SOURCE cpu: costs in thread CPU ns


def test_profile_floor_under_django_refused_where_the_endpoint_comes_late(tmp_path, cpl, fw):
    if fw.name != "django":
        r = subprocess.run([sys.executable, "-c", _VALIDATE, fw.name, json.dumps({"PROFILE_MIN_PER_MINUTE": 2})],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert "Django only" in json.loads(r.stdout)["PROFILE_MIN_PER_MINUTE"]
        return
    # PROFILE_RATE 0: every profile comes from the floor, 2 a minute per endpoint.
    settings = base_settings(cpl.url, SAMPLE_RATE=1.0, PROFILE_RATE=0.0, PROFILE_MIN_PER_MINUTE=2)
    app = App(tmp_path, fw, settings)
    try:
        for i in range(2):
            assert app.get(f"/items/{i}", {"X-Request-ID": f"quiet-{i}"})[0] == 200
        for i in range(40):
            assert app.get("/work", {"X-Request-ID": f"busy-{i}"})[0] == 200
    finally:
        app.stop()  # flushed: everything sampled is in the store now
    http = cpl.http()
    assert functions(http, fw.endpoint("/items"))["profiled_requests"] == 2  # within the floor: all
    busy = functions(http, fw.endpoint("/work"))["profiled_requests"]
    assert 2 <= busy <= 20, busy  # its first two, then about 2 / (its requests so far) of the rest


def functions(http, endpoint: str) -> dict:
    # Every function: the default keeps the 50 heaviest, and /work has more
    # (Django 67, Flask 140, Starlette 114 in exact mode); the tests ask
    # whether a function is there, not where it ranks.
    return http.get_json("/v1/query/functions?" + urlencode(
        {"since": "1h", "service": "parity", "endpoint": endpoint, "sort": "total", "limit": 100000}))


# What drives the event loop (and the middleware's step driver): never a
# request's, so in no request's profile.
LOOP_FRAMES = {"run_forever", "run_until_complete", "_run_once", "_run", "run_asgi", "_metered",
               "<method 'run' of '_contextvars.Context' objects>"}
SLOW = {"slow", "parity_slow_before", "parity_slow_after", "parity_slow_task"}  # the last: a task it spawns
OTHER = {"other", "parity_other_work"}


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_interleaved_asgi_requests_each_get_their_own_profile(tmp_path, cpl, mode):
    """/pair/slow is suspended (asyncio.sleep, then an event) between its two
    halves while /pair/other runs on the same event loop: each profile holds
    its own view's functions (and its spawned task's) only, and no
    event-loop frame."""
    settings = base_settings(cpl.url, SAMPLE_RATE=1.0, PROFILE_RATE=1.0, PROFILE_MODE=mode)
    pairs = 3
    app = App(tmp_path, STARLETTE, settings)
    try:
        with ThreadPoolExecutor(2) as pool:
            for i in range(pairs):
                # Either may arrive first: the app makes them meet (parity_starlette).
                slow = pool.submit(app.get, f"/pair/slow?pair={i}")
                other = pool.submit(app.get, f"/pair/other?pair={i}")
                assert slow.result()[0] == 200 and other.result()[0] == 200
    finally:
        log = app.stop()
    assert "cpuledger: internal error" not in log
    http = cpl.http()
    wait_samples(http, 2 * pairs + 1)  # + the readiness probe
    got = {}
    for endpoint, own, foreign in (("/pair/slow", SLOW, OTHER), ("/pair/other", OTHER, SLOW)):
        fns = functions(http, endpoint)
        assert fns["profiled_requests"] == pairs, endpoint
        names = {f["name"] for f in fns["functions"]}
        assert own <= names, (endpoint, names)
        assert not names & foreign, (endpoint, names & foreign)
        assert not names & LOOP_FRAMES, (endpoint, names & LOOP_FRAMES)
        got[endpoint] = {f["name"]: f for f in fns["functions"]}
    for name in ("parity_slow_before", "parity_slow_after"):
        assert got["/pair/slow"][name]["calls"] == 1  # per profiled request
    assert got["/pair/other"]["parity_other_work"]["calls"] == 1
    # Every resume of the view's coroutine is a call (as cProfile counts on
    # 3.11): slow suspends at least once (asyncio.sleep(0)), its event wait
    # too unless other was done by then. Calls are per profiled request.
    assert got["/pair/slow"]["slow"]["calls"] >= 2
    assert got["/pair/other"]["other"]["calls"] >= 1


# --- switching off, commit, spool --------------------------------------------


@pytest.mark.parametrize("enabled", [False, None])
def test_enabled(tmp_path, cpl, fw, enabled):
    """False records nothing; None records here: a server a test starts is
    not the test runner, though it inherits $PYTEST_CURRENT_TEST."""
    settings = base_settings(cpl.url, SAMPLE_RATE=1.0, ENABLED=enabled)
    assert os.environ.get("PYTEST_CURRENT_TEST")
    app = App(tmp_path, fw, settings)
    try:
        for _ in range(3):
            assert app.get("/items/1")[0] == 200
    finally:
        app.stop()  # flushed at exit: whatever it recorded is in the store
    http = cpl.http()
    records = metric(http, "cpuledger_ingest_records_total")
    assert records == (0 if enabled is False else 4)


def test_commit_env(tmp_path, cpl, fw):
    settings = base_settings(cpl.url, SAMPLE_RATE=1.0, COMMIT_ENV="PARITY_COMMIT")
    app = App(tmp_path, fw, settings, env={"PARITY_COMMIT": "e5e5e5", "CPULEDGER_COMMIT": "wrong"})
    try:
        assert app.get("/items/1")[0] == 200
        wait_samples(cpl.http(), 2)
    finally:
        app.stop()
    assert list(breakdown(cpl.http(), "commit")) == [("e5e5e5",)]


def test_spool_dir_keeps_records_while_the_server_is_down(tmp_path, fw):
    cpl = ServerProcess(tmp_path / "cpl", token=TOKEN)  # port chosen, not started yet
    spool = tmp_path / "spool"
    app = App(tmp_path, fw, base_settings(cpl.url, SAMPLE_RATE=1.0, SPOOL_DIR=str(spool)))
    try:
        for _ in range(5):
            assert app.get("/items/2")[0] == 200
        wait_for_file(spool, "*.batch")
        cpl.start()
        where = [f"endpoint={fw.endpoint('/items')}"]
        wait_samples(cpl.http(), 5, where=where, timeout=90)
        app.stop()  # the workers flush all they hold: now nothing more can come
        # Replayed once each: no loss, no duplicates.
        assert sum(r["samples"] for r in wait_samples(cpl.http(), 5, where=where)) == 5
    finally:
        app.stop()
        cpl.stop()


# --- failures never reach the application -------------------------------------


def test_recorder_failure_never_reaches_the_app(tmp_path, cpl, fw):
    settings = base_settings(cpl.url, SAMPLE_RATE=1.0, PROFILE_RATE=1.0, FLAGS="parity_common.flags")
    app = App(tmp_path, fw, settings, env={"CPULEDGER_PARITY_BREAK": "1"})
    try:
        for path, _, status, _ in PLAN:
            assert app.get(path)[0] == status, path
        status, body = app.get("/items/7")
        assert (status, json.loads(body)) == (200, {"id": 7})
        assert json.loads(app.get("/work")[1])["total"] > 0
    finally:
        log = app.stop()
    assert "cpuledger: internal error" in log  # logged, once per kind
    assert "RuntimeError: cpuledger made to fail" not in log  # never raised through the app


# --- validation, the table, the spellings ------------------------------------

BAD = {
    "ENABLED": "yes", "SERVER_URL": "not a url", "TOKEN": 5, "SAMPLE_RATE": 1.5,
    "ENDPOINT_SAMPLE_RATES": {"/a": 2}, "SERVICE": 5, "HOST": 5, "CLUSTER": 5, "REGION": 5, "COMMIT": 5,
    "COMMIT_ENV": 5, "FLAGS": "no.such.module.fn", "USER_KEY": 42, "USER_SALT": 5, "REQUEST_ID_HEADER": 5,
    "SPOOL_DIR": 5, "COUNTER_SOURCE": "task-clock", "QUEUE_CAPACITY": 0, "BATCH_MAX_RECORDS": 0,
    "BATCH_MAX_DELAY_MS": -1, "PROFILE_RATE": 2, "PROFILE_MODE": "slow", "PROFILE_SOURCE": "tsc",
    "PROFILE_MIN_PER_MINUTE": -1,
}

_VALIDATE = """
import json, sys
fw, bad = sys.argv[1], json.loads(sys.argv[2])
base = {"ENABLED": True, "SERVER_URL": "http://127.0.0.1:9", "SPOOL_DIR": ""}
out = {}
if fw == "django":
    import django
    from django.conf import settings
    settings.configure(CPULEDGER=base, INSTALLED_APPS=[], ROOT_URLCONF=[])
    django.setup()
    from django.core.exceptions import ImproperlyConfigured as Error
    from cpuledger.django import CpuLedgerMiddleware
    def make(s):
        settings.CPULEDGER = s
        CpuLedgerMiddleware(lambda r: None)
else:
    from cpuledger import ConfigError as Error
    from cpuledger.asgi import CpuLedgerASGI
    from cpuledger.wsgi import CpuLedgerWSGI
    cls = CpuLedgerWSGI if fw == "flask" else CpuLedgerASGI
    def make(s):
        cls(lambda *a: None, **{k.lower(): v for k, v in s.items()})
for key, value in bad.items():
    try:
        make({**base, key: value})
        out[key] = "accepted"
    except Error as e:
        out[key] = str(e)
print(json.dumps(out))
"""


def test_bad_settings_fail_at_start_up_naming_the_key(fw):
    assert set(BAD) == {s.name for s in SETTINGS}
    r = subprocess.run([sys.executable, "-c", _VALIDATE, fw.name, json.dumps(BAD)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    for key, message in json.loads(r.stdout).items():
        assert key in message, (key, message)


COVERED = {
    "ENABLED": test_enabled, "SERVER_URL": test_endpoints_and_dimensions, "TOKEN": test_endpoints_and_dimensions,
    "SAMPLE_RATE": test_sampling_follows_request_ids_and_endpoint_rates,
    "ENDPOINT_SAMPLE_RATES": test_sampling_follows_request_ids_and_endpoint_rates,
    "REQUEST_ID_HEADER": test_sampling_follows_request_ids_and_endpoint_rates,
    "SERVICE": test_endpoints_and_dimensions, "HOST": test_endpoints_and_dimensions,
    "CLUSTER": test_endpoints_and_dimensions, "REGION": test_endpoints_and_dimensions,
    "COMMIT": test_endpoints_and_dimensions, "COMMIT_ENV": test_commit_env,
    "FLAGS": test_endpoints_and_dimensions, "USER_KEY": test_endpoints_and_dimensions,
    "USER_SALT": test_endpoints_and_dimensions, "SPOOL_DIR": test_spool_dir_keeps_records_while_the_server_is_down,
    "COUNTER_SOURCE": test_endpoints_and_dimensions, "QUEUE_CAPACITY": test_endpoints_and_dimensions,
    "BATCH_MAX_RECORDS": test_endpoints_and_dimensions, "BATCH_MAX_DELAY_MS": test_endpoints_and_dimensions,
    "PROFILE_RATE": test_profiles, "PROFILE_MODE": test_profiles, "PROFILE_SOURCE": test_profiles,
    "PROFILE_MIN_PER_MINUTE": test_profile_floor_under_django_refused_where_the_endpoint_comes_late,
}


def test_every_setting_has_a_parity_test():
    assert set(COVERED) == {s.name for s in SETTINGS}


def readme_settings() -> dict[str, object]:
    """The README's settings table: name -> default (a Python literal there)."""
    text = (ROOT / "README.md").read_text()
    section = text.split("#### Settings", 1)[1]
    out = {}
    for line in section.splitlines():
        m = re.match(r"\| `([A-Z_]+)` \| [^|]+ \| `([^`]*)` \|", line)
        if m:
            out[m.group(1)] = ast.literal_eval(m.group(2))
        elif out and not line.startswith("|"):
            break
    return out


def test_readme_settings_table_is_the_settings_table():
    assert readme_settings() == {s.name: s.default for s in SETTINGS}


def test_one_spelling_of_sources_and_modes():
    """_config's literals, the .pyi's and the counter names records carry are one set."""
    pyi = (ROOT / "python" / "cpuledger" / "_native.pyi").read_text()

    def literal(name):
        return tuple(re.findall(r'"([^"]+)"', re.search(rf"^{name} = Literal\[(.*)\]$", pyi, re.M).group(1)))

    assert literal("CounterSourceName") == COUNTER_SOURCES
    assert literal("ProfileSourceName") == PROFILE_SOURCES
    assert literal("ProfileModeName") == PROFILE_MODES
    header = (ROOT / "src" / "counters" / "counters.h").read_text()
    table = re.search(r"kSources\[\] = \{(.*?)\n\};", header, re.S).group(1)
    assert set(COUNTER_SOURCES) - {"auto"} == set(re.findall(r'Source::k\w+, "([a-z_]+)"', table))
