"""Fleet faults on real parts: two ClickHouse shards (tests/clickhouse/cluster.py),
two `cpuledger serve` ingesting into them at once, senders that retry each
batch until one server acknowledges it (failing over to the other server).

(a) one ClickHouse server is SIGKILLed mid-ingest and restarted on its ports
    and data dir: the servers spool what they acknowledge meanwhile, say
    "degraded" on /healthz, and replay it once the shard is back;
(b) one `cpuledger serve` is SIGKILLed mid-ingest with acknowledged batches
    in its spool (a shard is down at the time): its senders fail over to the
    other server, and its restart replays the spool.

Either way, once the spools are drained the cluster holds exactly the
records of the acknowledged batches: none lost, none twice (request ids are
distinct, so count() = uniqExact(request_id) = acknowledged).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT, ServerProcess, cpuledger_exe

sys.path.insert(0, str(ROOT / "tests" / "clickhouse"))
from cluster import Cluster  # noqa: E402

SENDERS = 6
BATCHES = 24  # per sender
RECORDS = 20  # per batch: 2,880 records in all
PACE_S = 0.1  # between a sender's batches: ingest lasts long enough to be hit mid-way
DEADLINE_S = 90
DATABASE = f"fleet_{os.getpid()}"

pytestmark = pytest.mark.skipif(
    shutil.which("clickhouse-server") is None, reason="clickhouse-server is not installed")


def batch_body(sender: str, seq: int, now_us: int) -> bytes:
    """Batch `seq` of `sender`: RECORDS records, each with its own request id."""
    lines = [{"type": "batch", "sender": sender, "sequence": seq}]
    for i in range(RECORDS):
        lines.append({
            "service": "fleet", "endpoint": f"/e{i % 3}/", "method": "GET", "status": 200,
            "host": sender, "start_time_unix_us": now_us - 600_000_000 + seq * 1000 + i,
            "wall_us": 1000, "cpu_ns": 500_000 + i, "counter_source": "task_clock",
            "sample_rate": 1.0, "request_id": f"{sender}-{seq}-{i}"})
    return ("\n".join(json.dumps(x) for x in lines) + "\n").encode()


def post(url: str, body: bytes) -> int:
    req = urllib.request.Request(url + "/v1/ingest", data=body, method="POST",
                                 headers={"Content-Type": "application/x-ndjson"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:  # refused, reset, timed out: the server may be dead
        return 0


class Senders:
    """SENDERS threads, each posting its batches in order, every batch retried
    (the same bytes, to the other server) until a 200."""

    def __init__(self, servers: list[ServerProcess]):
        self.servers = servers
        self.acked = 0  # batches acknowledged
        self.failures = 0  # attempts that were not a 200
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(SENDERS)]
        self.now_us = int(time.time() * 1e6)

    def start(self) -> "Senders":
        for t in self.threads:
            t.start()
        return self

    def _run(self, i: int) -> None:
        target = i % len(self.servers)
        deadline = time.monotonic() + DEADLINE_S
        for seq in range(1, BATCHES + 1):
            body = batch_body(f"sender-{i}", seq, self.now_us)
            while post(self.servers[target].url, body) != 200:
                with self.lock:
                    self.failures += 1
                assert time.monotonic() < deadline, "a batch was never acknowledged"
                target = (target + 1) % len(self.servers)
                time.sleep(0.05)  # back-off between retries, as the recorder does
            with self.lock:
                self.acked += 1
            time.sleep(PACE_S)

    def wait_acked(self, n: int) -> None:
        poll(lambda: self.acked >= n, f"{n} batches acknowledged")

    def join(self) -> int:
        for t in self.threads:
            t.join(DEADLINE_S)
            assert not t.is_alive(), "a sender is still retrying"
        assert self.acked == SENDERS * BATCHES
        return self.acked * RECORDS


def poll(done, what: str, deadline_s: float = DEADLINE_S):
    end = time.monotonic() + deadline_s
    while True:
        value = done()
        if value:
            return value
        assert time.monotonic() < end, f"no {what} within {deadline_s}s"
        time.sleep(0.05)


def metric(server: ServerProcess, name: str) -> float | None:
    """The sample `name` (with its labels, if any: 'x{result="spooled"}') of /metrics."""
    try:
        with urllib.request.urlopen(server.url + "/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} in /metrics")


SPOOLED = 'cpuledger_store_spool_batches_total{result="spooled"}'
REPLAYED = 'cpuledger_store_spool_batches_total{result="replayed"}'


def healthz(server: ServerProcess) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(server.url + "/healthz", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def drained(servers: list[ServerProcess]) -> None:
    poll(lambda: all(metric(s, "cpuledger_store_spool_batches") == 0 for s in servers),
         "empty spools")


def stored(cluster: Cluster) -> tuple[int, int]:
    """count() and uniqExact(request_id) over the Distributed table."""
    q = f"SELECT count(), uniqExact(request_id) FROM {DATABASE}.records FORMAT TabSeparated"
    req = urllib.request.Request(cluster.http_urls[0] + "/", data=q.encode(), method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        count, distinct = r.read().decode().split()
    return int(count), int(distinct)


class Serve(ServerProcess):
    """`cpuledger serve` on the cluster; start() waits for any answer (a
    restarted server with a spool says 503 degraded until it is replayed)."""

    def __init__(self, root: Path, name: str, cluster: Cluster):
        root.mkdir(parents=True, exist_ok=True)
        config = root / f"{name}.toml"
        config.write_text(
            'store = "clickhouse"\n'
            f"clickhouse_urls = {json.dumps(cluster.http_urls)}\n"
            f'clickhouse_database = "{DATABASE}"\n'
            'detect_every = "off"\n')
        super().__init__(root / name, extra=["--config", str(config)])

    def start(self):
        args = [cpuledger_exe(), "serve", "--port", str(self.port), "--data-dir",
                str(self.data_dir)] + self.extra
        self.proc = subprocess.Popen(args, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        poll(lambda: self.proc.poll() is not None or healthz_or_none(self) is not None,
             "answer from cpuledger serve", 60)
        assert self.proc.poll() is None, self.log.read_text()
        return self

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


def healthz_or_none(server: ServerProcess):
    try:
        return healthz(server)
    except OSError:
        return None


@pytest.fixture
def fleet(tmp_path):
    cluster = Cluster.start(tmp_path / "ch", shards=2)
    servers = []
    try:
        yield cluster, servers, tmp_path
    finally:
        for s in servers:
            if s.proc and s.proc.poll() is None:
                s.proc.terminate()
                s.proc.wait(30)
        cluster.stop()


def test_a_clickhouse_shard_killed_mid_ingest_loses_and_doubles_nothing(fleet):
    cluster, servers, tmp = fleet
    servers += [Serve(tmp, "serve0", cluster).start()]  # creates the schema
    servers += [Serve(tmp, "serve1", cluster).start()]
    senders = Senders(servers).start()
    senders.wait_acked(SENDERS * BATCHES // 4)

    cluster.kill(1)
    # Ingest goes on: acknowledged from the spools, which /healthz reports.
    before = senders.acked
    senders.wait_acked(before + SENDERS * 2)
    degraded = poll(lambda: next((h for h in map(healthz, servers) if h[0] == 503), None),
                    "degraded /healthz")
    assert "store unavailable" in degraded[1] and "batches spooled" in degraded[1], degraded
    assert sum(metric(s, "cpuledger_store_spool_batches") for s in servers) > 0

    cluster.restart(1)
    expected = senders.join()
    drained(servers)
    spooled = [metric(s, SPOOLED) for s in servers]
    print(f"spooled during the outage: {spooled}; {senders.failures} failed attempts")
    assert sum(spooled) > 0, "the outage never reached the spool"
    assert stored(cluster) == (expected, expected)
    assert all(healthz(s)[0] == 200 for s in servers)


def test_a_serve_killed_mid_ingest_replays_its_spool_on_restart(fleet):
    cluster, servers, tmp = fleet
    servers += [Serve(tmp, "serve0", cluster).start()]
    servers += [Serve(tmp, "serve1", cluster).start()]
    senders = Senders(servers).start()
    senders.wait_acked(SENDERS * BATCHES // 4)
    # A shard down keeps acknowledged batches in a server's spool (one whose
    # groups hold a sender of that shard)...
    cluster.kill(1)
    victim = poll(lambda: next(
        (s for s in servers if metric(s, "cpuledger_store_spool_batches") >= 3), None),
        "a server spooling")
    victim.kill()  # ...when it dies
    other = next(s for s in servers if s is not victim)
    left = len(list((victim.data_dir / "spool" / "ingest").glob("*.batch")))
    assert left >= 3

    cluster.restart(1)
    expected = senders.join()  # the victim's senders finish on the other server
    drained([other])
    # The victim restarts once the other is drained: two servers appending the
    # same batch at the same moment may both store it (clickhouse_store.h, 3).
    victim.start()
    drained(servers)
    assert metric(victim, REPLAYED) == left
    print(f"the killed server left {left} spooled batches; {senders.failures} failed attempts")
    assert senders.failures > 0, "no sender had to fail over"
    assert stored(cluster) == (expected, expected)
    assert all(healthz(s)[0] == 200 for s in servers)
