"""The detector lease end to end: two `cpuledger serve` instances on one
two-shard ClickHouse cluster (real 18.16 servers on loopback), a short
detect_every. Exactly one runs the detector schedule; when it is killed
(SIGKILL: no goodbye) the other takes the lease over within its ttl (three
detect_every) and the runs go on there.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, ServerProcess

sys.path.insert(0, str(ROOT / "tests/clickhouse"))
from cluster import Cluster  # noqa: E402

DETECT_EVERY_S = 1
LEASE_TTL_S = 3 * DETECT_EVERY_S  # server.h: the lease lasts three periods
# Polls allow for a loaded 2-core machine; the takeover bound below is the ttl
# plus one period plus this slack.
SLACK_S = 10


def metric(server: ServerProcess, name: str, labels: str = "") -> float:
    status, body = server.http().request("GET", "/metrics")
    assert status == 200, body
    m = re.search(rf"^{re.escape(name + labels)} (\S+)$", body.decode(), re.M)
    assert m, f"{name}{labels} missing from /metrics"
    return float(m.group(1))


def leader(server: ServerProcess) -> int:
    return int(metric(server, "cpuledger_detector_leader"))


def runs(server: ServerProcess, result: str = "ok") -> int:
    return int(metric(server, "cpuledger_detector_runs_total", f'{{result="{result}"}}'))


def wait_for(what: str, cond, timeout_s: float):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout_s}s waiting for {what}")


@pytest.fixture
def cluster(tmp_path):
    with Cluster.start(tmp_path / "clickhouse", shards=2) as c:
        yield c


def start_server(tmp_path: Path, cluster: Cluster, name: str) -> ServerProcess:
    config = tmp_path / f"{name}.toml"
    urls = ", ".join(f'"{u}"' for u in cluster.http_urls)
    config.write_text(
        f'store = "clickhouse"\nclickhouse_urls = [{urls}]\nclickhouse_database = "lease_e2e"\n'
        f'detect_every = "{DETECT_EVERY_S}s"\ndetect_window = "1h"\n')
    return ServerProcess(tmp_path / name, extra=["--config", str(config)]).start()


def test_one_leader_and_takeover_after_sigkill(tmp_path, cluster):
    a = start_server(tmp_path, cluster, "a")
    b = start_server(tmp_path, cluster, "b")
    try:
        # Each instance tries the lease before its first run: one holds it.
        wait_for("a detector leader",
                 lambda: leader(a) + leader(b) == 1 and runs(a) + runs(b) >= 1, 30)
        lead, follow = (a, b) if leader(a) else (b, a)
        # The leader keeps running while the follower skips every run.
        first = runs(lead)
        wait_for("three more runs on the leader", lambda: runs(lead) >= first + 3, 30)
        assert leader(lead) == 1 and leader(follow) == 0
        assert runs(follow) == 0 and runs(follow, "error") == 0
        assert runs(lead, "error") == 0, lead.log.read_text()

        lead.proc.kill()  # SIGKILL: the lease is not given back
        lead.proc.wait(timeout=30)
        killed = time.monotonic()
        wait_for("the follower to take the lease over", lambda: leader(follow) == 1,
                 LEASE_TTL_S + DETECT_EVERY_S + SLACK_S)
        print(f"takeover {time.monotonic() - killed:.1f}s after the SIGKILL (ttl {LEASE_TTL_S}s)")
        wait_for("runs on the new leader", lambda: runs(follow) >= 2, 30)
        assert runs(follow, "error") == 0, follow.log.read_text()
        log = follow.log.read_text()
        assert "cpuledger: detector lease taken by" in log, log
    finally:
        for s in (a, b):
            if s.proc.poll() is None:
                s.stop()
