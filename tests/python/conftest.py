"""Shared fixtures: a real `cpuledger serve` on loopback, and HTTP helpers."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def cpuledger_exe() -> str:
    exe = shutil.which("cpuledger")
    assert exe, "the installed package must put `cpuledger` on PATH"
    return exe


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Http:
    """Minimal HTTP client (stdlib only) that never raises on HTTP errors."""

    def __init__(self, base: str, token: str | None = None):
        self.base = base
        self.token = token

    def request(self, method, path, body=None, content_type=None, token=..., headers=None):
        req = urllib.request.Request(self.base + path, data=body, method=method)
        tok = self.token if token is ... else token
        if tok:
            req.add_header("Authorization", f"Bearer {tok}")
        if content_type:
            req.add_header("Content-Type", content_type)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def get_json(self, path, **kw):
        status, body = self.request("GET", path, **kw)
        assert status == 200, (status, body)
        return json.loads(body)

    def post_ndjson(self, lines, **kw):
        body = "\n".join(json.dumps(line) for line in lines).encode()
        return self.request("POST", "/v1/ingest", body, "application/x-ndjson", **kw)


class ServerProcess:
    """`cpuledger serve` as a child process on a free loopback port."""

    def __init__(self, data_dir: Path, token: str | None = None, extra=()):
        self.data_dir = data_dir
        self.token = token
        self.extra = list(extra)
        self.port = free_port()
        self.proc = None
        self.log = data_dir.parent / f"serve-{self.port}.log"

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        args = [cpuledger_exe(), "serve", "--port", str(self.port), "--data-dir", str(self.data_dir)]
        if self.token:
            args += ["--token", self.token]
        args += self.extra
        self.proc = subprocess.Popen(args, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"cpuledger serve exited {self.proc.returncode}: {self.log.read_text()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("cpuledger serve did not become healthy")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
        return self.proc.returncode if self.proc else None

    def http(self, token=...):
        return Http(self.url, self.token if token is ... else token)


@pytest.fixture
def server(tmp_path):
    s = ServerProcess(tmp_path / "data").start()
    yield s
    s.stop()


@pytest.fixture(scope="session")
def record_pb2(tmp_path_factory):
    """The record schema compiled for Python with Debian's protoc."""
    out = tmp_path_factory.mktemp("pb")
    subprocess.run(
        ["protoc", f"--python_out={out}", "-I", str(ROOT / "src"), str(ROOT / "src/record/record.proto")],
        check=True,
    )
    sys.path.insert(0, str(out))
    from record import record_pb2 as mod  # noqa: E402

    return mod


# Known on CPython 3.12+ (make test-py-wheel runs the suite on 3.13), each
# listed by test id (a name without [params] covers all its params); remove
# an entry when its cause is fixed.
# Fast mode falls back to exact mode there: issue 14 part 2 ports it.
FAST_MODE_ON_312 = pytest.mark.skipif(sys.version_info >= (3, 12), reason="fast mode on 3.12+: issue 14 part 2")
FAST_MODE_TESTS = (
    "test_profiler.py::test_fast_mode_paths_equal_exact",
    "test_profiler.py::test_fast_mode_counts_equal_cprofile_for_python_functions",
    "test_profiler.py::test_fast_mode_installs_and_uninstalls",
    "test_profiler.py::test_fast_mode_chains_to_a_previous_eval_frame_function",
    "test_profiler.py::test_fast_and_exact_steps_give_the_same_python_paths",
    "test_profiler.py::test_pause_leaves_the_thread_free[fast]",
    "test_profile_exports.py::test_pprof_decodes_with_the_schema[cpu-fast]",
    "test_profile_exports.py::test_pprof_decodes_with_the_schema[wall-fast]",
    "test_profile_exports.py::test_fast_mode_with_asyncio_coroutines",
    "test_parity.py::test_profiles[django-fast-wall-None]",
    "test_parity.py::test_profiles[flask-fast-wall-None]",
    "test_parity.py::test_profiles[starlette-fast-wall-None]",
    "test_parity.py::test_interleaved_asgi_requests_each_get_their_own_profile[fast]",
    "test_apportioned_profiles.py::test_django_profiles_share_out_each_requests_bill",
    # exact mode's profile ranks the helper's `ord` calls first: fast mode folds them into it
    "test_profiled_requests.py::test_diff_between_commits_names_the_added_helper[cpu]",
)
# The ASGI middleware's spawned tasks: asyncio.Task takes only coroutines on
# 3.12+, and cpuledger.asgi hands it the generator-based _metered ("TypeError:
# a coroutine was expected"), so such a request answers 500.
ASGI_TASKS_ON_312 = pytest.mark.xfail(sys.version_info >= (3, 12), strict=False,
                                      reason="ASGI task factory on 3.12+: _metered is not a coroutine (issue 14)")
ASGI_TASK_TESTS = (
    "test_middleware.py::test_asgi_attributes_cpu_to_the_request_that_spent_it",
    "test_parity.py::test_endpoints_and_dimensions[starlette]",
    "test_parity.py::test_interleaved_asgi_requests_each_get_their_own_profile[exact]",
)


def pytest_collection_modifyitems(config, items):
    def listed(item, ids):
        test_id = f"{Path(str(item.fspath)).name}::{item.name}"
        return any(test_id == i or (("[" not in i) and test_id.split("[")[0] == i) for i in ids)

    for item in items:
        if listed(item, FAST_MODE_TESTS):
            item.add_marker(FAST_MODE_ON_312)
        if listed(item, ASGI_TASK_TESTS):
            item.add_marker(ASGI_TASKS_ON_312)
