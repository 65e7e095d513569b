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
