#!/usr/bin/env python3
"""tests/clickhouse/cluster.py — N real ClickHouse servers on loopback, as the
N shards of one cluster named "cpuledger", for the ClickHouse store's tests.

Each server gets free loopback ports (HTTP and native), its own data dir and
config files written here, and the same remote_servers section, so a
Distributed table on any of them spans all shards. Servers run as the current
user (root or not) from Debian's clickhouse-server (scripts/bootstrap
installs it). Standard library only: ctest runs it with the system python3.

As a module (pytest):

    with Cluster.start(tmp_path, shards=2) as cluster:
        cluster.http_urls  # ["http://127.0.0.1:PORT", ...]
        cluster.kill(1)     # SIGKILL shard 1 (a crash)...
        cluster.restart(1)  # ...and start it again on its ports and data dir

From the command line (ctest's FIXTURES_SETUP / FIXTURES_CLEANUP):

    cluster.py start DIR --shards 2   # writes DIR/cluster.json, returns when all answer /ping
    cluster.py stop DIR               # SIGTERM, then SIGKILL; removes DIR

DIR/cluster.json: {"http_urls": [...], "tcp_ports": [...], "pids": [...],
"cluster": "cpuledger"}. The C++ tests read it (CPULEDGER_CLICKHOUSE_CLUSTER).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

CLUSTER_NAME = "cpuledger"
SERVER = os.environ.get("CLICKHOUSE_SERVER", "clickhouse-server")
START_DEADLINE_S = 60.0
STOP_DEADLINE_S = 20.0


def _free_ports(n: int) -> list[int]:
    # Holding every socket open until all are picked keeps the ports distinct.
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _remote_servers(tcp_ports: list[int]) -> str:
    shards = "".join(
        f"<shard><replica><host>127.0.0.1</host><port>{p}</port></replica></shard>"
        for p in tcp_ports
    )
    return f"<remote_servers><{CLUSTER_NAME}>{shards}</{CLUSTER_NAME}></remote_servers>"


def _config(data: Path, http_port: int, tcp_port: int, remote_servers: str) -> str:
    # Small caches: several servers share a 2-core test machine.
    return f"""<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{data}/server.log</log>
    <errorlog>{data}/server.err.log</errorlog><console>0</console></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>{http_port}</http_port>
  <tcp_port>{tcp_port}</tcp_port>
  <path>{data}/</path>
  <tmp_path>{data}/tmp/</tmp_path>
  <user_files_path>{data}/user_files/</user_files_path>
  <format_schema_path>{data}/format_schemas/</format_schema_path>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>67108864</mark_cache_size>
  <uncompressed_cache_size>67108864</uncompressed_cache_size>
  <max_concurrent_queries>64</max_concurrent_queries>
  {remote_servers}
</yandex>
"""


USERS = """<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip></networks>
    <profile>default</profile><quota>default</quota></default></users>
  <quotas><default></default></quotas>
</yandex>
"""


def _ping(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/ping", timeout=1) as r:
            return r.status == 200 and r.read().strip() == b"Ok."
    except OSError:
        return False


def _is_clickhouse(pid: int) -> bool:
    # A pid from a state file may have been reused: only signal our server.
    # The task name, not cmdline: reading cmdline goes through the process's
    # memory and came back empty now and then for a live server starting up
    # on a loaded machine (a server taken for dead, then leaked by stop).
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    name, state = stat[stat.find("(") + 1:stat.rfind(")")], stat[stat.rfind(")") + 2:][:1]
    return name.startswith("clickhouse") and state != "Z"


def _stop_pids(pids: list[int]) -> None:
    live = [p for p in pids if _is_clickhouse(p)]
    for p in live:
        os.kill(p, signal.SIGTERM)
    deadline = time.monotonic() + STOP_DEADLINE_S
    while live and time.monotonic() < deadline:
        for p in list(live):
            try:  # reap our own children; others' just vanish
                if os.waitpid(p, os.WNOHANG)[0] == p:
                    live.remove(p)
                    continue
            except ChildProcessError:
                pass
            if not _is_clickhouse(p):
                live.remove(p)
        time.sleep(0.05)
    for p in live:
        os.kill(p, signal.SIGKILL)
        try:
            os.waitpid(p, 0)
        except ChildProcessError:
            pass


@dataclass
class Cluster:
    root: Path
    http_urls: list[str] = field(default_factory=list)
    tcp_ports: list[int] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)

    @classmethod
    def start(cls, root: Path, shards: int = 2) -> "Cluster":
        """Writes the configs, starts the servers, returns when each answers
        /ping; on failure stops what started and raises with the logs' tail."""
        root = Path(root).resolve()
        root.mkdir(parents=True, exist_ok=True)
        ports = _free_ports(2 * shards)
        http_ports, tcp_ports = ports[:shards], ports[shards:]
        cluster = cls(root, [f"http://127.0.0.1:{p}" for p in http_ports], tcp_ports)
        remote = _remote_servers(tcp_ports)
        try:
            for i in range(shards):
                d = root / f"shard{i}"
                (d / "tmp").mkdir(parents=True, exist_ok=True)
                (d / "config.xml").write_text(_config(d, http_ports[i], tcp_ports[i], remote))
                (d / "users.xml").write_text(USERS)
                cluster.pids.append(cluster._spawn(i))
            cluster._write_state()
            cluster._wait_ready()
        except BaseException:
            _stop_pids(cluster.pids)
            raise
        return cluster

    def _spawn(self, i: int) -> int:
        d = self.root / f"shard{i}"
        with open(d / "stdout.log", "ab") as out:
            proc = subprocess.Popen(
                [SERVER, f"--config-file={d / 'config.xml'}"],
                cwd=d, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        return proc.pid

    def kill(self, i: int) -> None:
        """SIGKILLs shard i's server (a crash: no shutdown) and reaps it."""
        pid = self.pids[i]
        if _is_clickhouse(pid):
            os.kill(pid, signal.SIGKILL)
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:  # not our child: wait for it to vanish
                deadline = time.monotonic() + STOP_DEADLINE_S
                while _is_clickhouse(pid) and time.monotonic() < deadline:
                    time.sleep(0.05)

    def restart(self, i: int) -> None:
        """Starts shard i again on the same ports and data dir; returns when
        it answers /ping."""
        self.pids[i] = self._spawn(i)
        self._write_state()
        self._wait_ready([i])

    def _wait_ready(self, shards: list[int] | None = None) -> None:
        shards = list(range(len(self.pids))) if shards is None else shards
        deadline = time.monotonic() + START_DEADLINE_S
        pending = [self.http_urls[i] for i in shards]
        while pending:
            pending = [u for u in pending if not _ping(u)]
            dead = [self.pids[i] for i in shards if not _is_clickhouse(self.pids[i])]
            if dead or (pending and time.monotonic() > deadline):
                why = f"exited: pids {dead}" if dead else f"no /ping in {START_DEADLINE_S}s"
                raise RuntimeError(f"ClickHouse did not start ({why}):\n{self.log_tail()}")
            if pending:
                time.sleep(0.1)

    def log_tail(self, lines: int = 20) -> str:
        out = []
        for f in sorted(self.root.glob("shard*/*.log")):
            text = f.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {f}\n" + "\n".join(text))
        return "\n".join(out)

    def _write_state(self) -> None:
        state = {"cluster": CLUSTER_NAME, "http_urls": self.http_urls,
                 "tcp_ports": self.tcp_ports, "pids": self.pids}
        (self.root / "cluster.json").write_text(json.dumps(state) + "\n")

    def stop(self, remove: bool = True) -> None:
        _stop_pids(self.pids)
        if remove:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def stop_dir(root: Path) -> None:
    state = root / "cluster.json"
    if state.exists():
        _stop_pids(json.loads(state.read_text())["pids"])
    shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("start")
    s.add_argument("dir", type=Path)
    s.add_argument("--shards", type=int, default=2)
    t = sub.add_parser("stop")
    t.add_argument("dir", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "start":
        stop_dir(args.dir)  # a cluster left by an interrupted run
        cluster = Cluster.start(args.dir, args.shards)
        print(" ".join(cluster.http_urls))
    else:
        stop_dir(args.dir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
