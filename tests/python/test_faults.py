"""Faults an operator meets, against a real `cpuledger serve` on loopback.

A full disk: the server refuses what it cannot store (503, so clients keep
it and retry), stores nothing it did not acknowledge, says so on /healthz
and in /metrics, logs it without flooding the log, and recovers on its own
when space returns. The small disk is a tmpfs, which needs root; without
root the test is skipped and says why.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from conftest import ServerProcess
from test_hostile_input import stored
from test_server import make_records

DISK_BYTES = 6 << 20
FILLER_BYTES = 2 << 20
MAX_POSTS = 400  # bounds the test: the disk is full long before


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("a full disk needs a small tmpfs, and mounting one needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def ndjson_batch(sender: str, sequence: int, records: list[dict]) -> bytes:
    """An NDJSON batch with its (sender, sequence): a replay of it is a duplicate."""
    head = json.dumps({"type": "batch", "sender": sender, "sequence": sequence})
    return ("\n".join([head] + [json.dumps(r) for r in records]) + "\n").encode()


def batch(k: int, n: int = 400) -> bytes:
    """Batch k: its own sequence and hosts, so every batch adds rows."""
    records = make_records(n=n, seed=k, sample_rate=1.0)
    for i, r in enumerate(records):
        r["host"] = f"web-{k}-{i % 7}"
        r["user"] = f"user-{k}-{i}"
    return ndjson_batch("fault-test", k + 1, records)


def test_a_full_disk_is_refused_reported_and_recovered_from(small_disk, tmp_path):
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * FILLER_BYTES)
    server = ServerProcess(small_disk / "data")
    server.log = tmp_path / "serve.log"  # not on the disk that fills
    server.start()
    try:
        http = server.http()
        acknowledged, k, status, answer = 0, 0, 200, b""
        while k < MAX_POSTS:
            status, answer = http.request("POST", "/v1/ingest", batch(k), "application/x-ndjson")
            if status != 200:
                break
            acknowledged += json.loads(answer)["accepted"]
            k += 1
        assert status == 503, f"the disk never filled in {MAX_POSTS} batches"
        print(f"the disk filled after {k} batches, {acknowledged} records: {answer!r}")
        # More failures while full: each refused, the log line rate-limited.
        for _ in range(20):
            assert http.request("POST", "/v1/ingest", batch(k), "application/x-ndjson")[0] == 503
        health = http.request("GET", "/healthz")
        assert health[0] == 503 and health[1].startswith(b"degraded: the store cannot write"), health
        metrics = http.request("GET", "/metrics")[1].decode()
        assert "cpuledger_store_writable 0" in metrics
        assert stored(server) == acknowledged  # nothing it refused was kept

        filler.unlink()  # space returns
        status, answer = http.request("POST", "/v1/ingest", batch(k), "application/x-ndjson")
        assert status == 200, answer
        acknowledged += json.loads(answer)["accepted"]
        assert http.request("GET", "/healthz") == (200, b"ok\n")
        assert "cpuledger_store_writable 1" in http.request("GET", "/metrics")[1].decode()
        assert stored(server) == acknowledged
    finally:
        server.stop()
    log = server.log.read_text()
    failures = [line for line in log.splitlines() if "store append failed" in line]
    assert 1 <= len(failures) <= 3, log  # 21+ failures in a few seconds, one line per 10 s
    assert "the store writes again" in log


def test_kill_9_during_concurrent_ingest_loses_nothing_acknowledged(tmp_path):
    """Four senders post numbered batches at once; the server is killed with
    SIGKILL mid-stream. Every acknowledged batch must be in the restarted
    store, and resending every batch not acknowledged (as a recorder's spool
    does, same sender and sequence) must end with each batch stored once."""
    import signal
    import threading

    senders, per_batch, max_batches = 4, 50, 200
    data = tmp_path / "data"
    server = ServerProcess(data).start()
    acked: set[tuple[int, int]] = set()
    enough = threading.Condition()

    def body(k: int, seq: int) -> bytes:
        return ndjson_batch(f"killed-{k}", seq, make_records(n=per_batch, seed=k * 1000 + seq, sample_rate=1.0))

    def send(k: int):
        http = server.http()
        for seq in range(1, max_batches + 1):
            try:
                status, _ = http.request("POST", "/v1/ingest", body(k, seq), "application/x-ndjson")
            except OSError:  # the server died under this request: not acknowledged
                return
            if status != 200:
                return
            with enough:
                acked.add((k, seq))
                enough.notify_all()

    threads = [threading.Thread(target=send, args=(k,)) for k in range(senders)]
    for t in threads:
        t.start()
    with enough:
        assert enough.wait_for(lambda: len(acked) >= 40, timeout=60), len(acked)
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait(timeout=30)
    for t in threads:
        t.join(timeout=60)
    acknowledged = sorted(acked)
    assert len(acknowledged) < senders * max_batches, "the kill came after every batch was sent"

    restarted = ServerProcess(data).start()
    try:
        assert stored(restarted) >= len(acknowledged) * per_batch  # acknowledged = stored
        http = restarted.http()
        for k in range(senders):
            for seq in range(1, max_batches + 1):
                if (k, seq) not in acked:
                    assert http.request("POST", "/v1/ingest", body(k, seq), "application/x-ndjson")[0] == 200
        assert stored(restarted) == senders * max_batches * per_batch  # each batch once
    finally:
        restarted.stop()
