"""The ClickHouse store's SQL on a current ClickHouse (chDB, in process).

The store's C++ builds every statement (src/store/clickhouse/sql.h); the
printer binary built beside the C++ tests prints them, and here they run on
chDB: the schema (with a remote_servers config naming the store's cluster, so
the Distributed tables are created too) and every query shape. chDB has no
other server to reach, so queries read the local tables (records_local) in
place of the Distributed ones. The same statements run on ClickHouse 18.16 in
the C++ conformance suite (tests/cpp/store/store_conformance_test.cc).
"""

import json
import os
import subprocess
from pathlib import Path

import chdb
import pytest

REPO = Path(__file__).resolve().parents[2]
PRINTER = Path(os.environ.get(
    "CPULEDGER_CLICKHOUSE_SQL_PRINT", REPO / "build/tests/cpp/store/clickhouse_sql_print"))

CONFIG = """<clickhouse><remote_servers><cpuledger><shard><replica>
<host>127.0.0.1</host><port>9</port></replica></shard></cpuledger></remote_servers></clickhouse>
"""


def local(sql: str) -> str:
    """The query on this server's tables in place of the Distributed ones."""
    return (sql.replace("ledger.records ", "ledger.records_local ")
               .replace("ledger.rollup_minute ", "ledger.rollup_minute_mv ")
               .replace("ledger.rollup_minute_coarse ", "ledger.rollup_minute_coarse_mv ")
               .replace("ledger.rollup_hour ", "ledger.rollup_hour_mv ")
               .replace("ledger.rollup_hour_coarse ", "ledger.rollup_hour_coarse_mv ")
               .replace("ledger.effects ", "ledger.effects_local ")
               .replace("ledger.profile_sums ", "ledger.profile_sums_local ")
               .replace("ledger.efficiency_minute ", "ledger.efficiency_minute_mv ")
               .replace("ledger.tallies ", "ledger.tallies_local ")
               .replace("ledger.tally_users ", "ledger.tally_users_local ")
               .replace("ledger.function_codes ", "ledger.function_codes_local "))


def statements(database: str) -> list[dict]:
    assert PRINTER.exists(), (
        f"{PRINTER} is missing: build it (cmake --build build --target clickhouse_sql_print) "
        "or point CPULEDGER_CLICKHOUSE_SQL_PRINT at it")
    out = subprocess.run([str(PRINTER), database, "cpuledger"], capture_output=True, text=True,
                         check=True).stdout
    return [json.loads(line) for line in out.splitlines()]


@pytest.fixture
def conn(tmp_path):
    (tmp_path / "config.xml").write_text(CONFIG)
    c = chdb.connect(f"file:{tmp_path / 'db'}?config-file={tmp_path / 'config.xml'}")
    yield c
    c.close()


def test_schema_and_every_query_shape_run_on_current_clickhouse(conn):
    sql = statements("ledger")
    schema = [s["sql"] for s in sql if s["kind"] == "schema"]
    queries = [s["sql"] for s in sql if s["kind"] == "query"]
    assert len(schema) > 10 and len(queries) >= 6
    for _ in range(2):  # idempotent: a second start changes nothing
        for stmt in schema:
            conn.query(stmt)
    tables = conn.query("SELECT name FROM system.tables WHERE database = 'ledger' ORDER BY name",
                        "CSV").bytes().decode().split()
    for t in ["records", "records_local", "rollup_minute", "rollup_minute_mv",
              "rollup_minute_coarse", "rollup_minute_coarse_mv", "rollup_hour", "rollup_hour_mv",
              "rollup_hour_coarse", "rollup_hour_coarse_mv", "batches_local",
              "alert_versions", "effects", "profile_sums", "profile_sums_local", "efficiency_minute",
              "efficiency_minute_mv", "tallies", "tally_users", "function_codes",
              "function_codes_local", "schema_version"]:
        assert f'"{t}"' in tables

    conn.query("""INSERT INTO ledger.records_local
        (day, start_us, service, endpoint, status, flag_names, flag_values, user, sample_rate,
         wall_us, instructions, cpu_ns, sender, sequence) VALUES
        ('2025-12-05', 1764892800000000, 'shop', 'cart', 200, ['new_checkout'], ['on'], 'u1', 0.5,
         900, 3000, 1000, 's', 1),
        ('2025-12-05', 1764892860000000, 'shop', 'cart', 500, [], [], '', 1, 800, NULL, 2000, 's', 1)""")
    for q in queries:
        conn.query(local(q), "TSV")  # raises with ClickHouse's message if it does not run

    # Everything in one group (whole minutes from the rollups): the Query
    # columns as the C++ parser reads them.
    row = conn.query(local(queries[0]), "TSV").bytes().decode().strip().split("\t")
    assert row[1:3] == ["2", "3"]                       # samples, est_requests
    assert row[3:5] == ["1", "3000"]                   # instructions n, mean (NULL skipped)
    assert row[-4:] == ["0", "0", "0", "0"]            # db/cache means

    # The engine keeps the minute rollups: states merge to the same answers.
    merged = conn.query("""SELECT countMerge(samples), sumMerge(est_requests),
        countIfMerge(instructions_n), sumMerge(cpu_ns_est),
        quantilesTDigestIfMerge(0.5, 0.9, 0.99)(cpu_ns_q), uniqCombinedIfMerge(users)
        FROM ledger.rollup_minute_mv""", "TSV").bytes().decode().strip().split("\t")
    assert merged[:4] == ["2", "3", "1", "4000"]
    assert merged[5] == "1"

    # Retention drops a day partition as system.parts names it.
    parts = conn.query(local(queries[-1]), "TSV").bytes().decode().split()
    assert parts[:2] == ["2025-12-05", "2"]
    for stmt in (s["sql"] for s in sql if s["kind"] == "retention"):
        conn.query(stmt)
    assert conn.query("SELECT count() FROM ledger.records_local", "TSV").bytes().strip() == b"0"


def test_alert_and_lease_sql_run_on_current_clickhouse(conn):
    sql = statements("ledger")
    for stmt in (s["sql"] for s in sql if s["kind"] == "schema"):
        conn.query(stmt)
    every, live, by_id, taken, events, holder = [
        s["sql"] for s in sql if s["kind"] == "detection"]
    # Alert 42: opened, updated, then acknowledged (version 3); alert 7 resolved.
    conn.query("""INSERT INTO ledger.alert_versions VALUES
        (42, 1, 'k\\\\''', 'it''s', 'cart', 'rollout', 0, 100, 100, 'v1', 0),
        (42, 2, 'k\\\\''', 'it''s', 'cart', 'rollout', 0, 100, 150, 'v2', 0),
        (42, 3, 'k\\\\''', 'it''s', 'cart', 'rollout', 1, 100, 200, 'v2', 0),
        (7, 1, 'k\\\\''', 'it''s', 'cart', 'rollout', 0, 50, 50, 'old', 0),
        (7, 2, 'k\\\\''', 'it''s', 'cart', 'rollout', 2, 50, 60, 'old', 0)""")
    conn.query("""INSERT INTO ledger.alert_events VALUES
        (42, 200, 1, 'ana', 'on it', ''), (42, 100, 0, 'detector', '', '')""")
    conn.query("""INSERT INTO ledger.leases VALUES
        ('detector''', 'b', 900, 1900), ('detector''', 'a', 800, 1800),
        ('detector''', 'c', 100, 999)""")

    def rows(q):
        return [r.split("\t") for r in conn.query(q, "TSV").bytes().decode().splitlines()]

    assert [r[0] for r in rows(every)] == ["42", "7"]              # newest opened first
    assert rows(by_id)[0][5:11] == ["1", "100", "200", "v2", "0", "3"]  # furthest state, newest body
    assert [r[0] for r in rows(live)] == ["42"]                    # acknowledged, of that key
    assert rows(taken) == [["1"]]
    assert rows(events) == [["100", "0", "detector", "", ""], ["200", "1", "ana", "on it", ""]]
    assert rows(holder) == [["a"]]                 # the oldest unexpired claim ('c' expired)


def tsv(conn, sql: str) -> list[list[str]]:
    out = conn.query(local(sql), "TSV").bytes().decode()
    return [line.split("\t") for line in out.splitlines()]


def test_profile_sums_and_the_peak_minute_sums_on_current_clickhouse(conn):
    sql = statements("ledger")
    for stmt in (s["sql"] for s in sql if s["kind"] == "schema"):
        conn.query(stmt)
    queries = [s["sql"] for s in sql if s["kind"] == "query"]

    # Two batches' rows of one slice and hour, and their markers: the engine
    # sums the first (a zero-sum path stays: rows counts it), never the markers.
    head = "'2025-12-05', '2025-12-05 00:00:00', 'shop', 'cart', 'c1', 'instructions', '', ''"
    rows = []
    for seq in (1, 2):
        rows += [f"({head}, 1, 0, 0, '', 1, 3, 0, 0, 0, 0, 0, 0, 0, 0, '', 0)",
                 f"({head}, 2, 11, 0, 'app.py:1:view', 1, 0, 3, 3, 5, 9, 0, 0, 0, 0, '', 0)",
                 f"({head}, 2, 12, 11, 'app.py:2:idle', 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, '', 0)",
                 f"({head}, 3, 77, 0, 'app.py:1:view', 1, 0, 0, 0, 0, 0, 5, 25, 1, 1, '', 0)",
                 "('2025-12-05', '2025-12-05 00:00:00', '', '', '', '', '', '', 0, 0, 0, '', 1, 0,"
                 f" 0, 0, 0, 0, 0, 0, 0, 0, 's', {seq})"]
    conn.query("INSERT INTO ledger.profile_sums_local VALUES " + ", ".join(rows))
    conn.query("OPTIMIZE TABLE ledger.profile_sums_local FINAL")
    assert conn.query("SELECT count() FROM ledger.profile_sums_local", "TSV").bytes() == b"6\n"

    def first(prefix: str) -> str:
        return next(q for q in queries if q.startswith(prefix))

    assert tsv(conn, first("SELECT unit, sum(requests)")) == [["instructions", "6"]]
    paths = sorted(tsv(conn, first("SELECT id, any(parent)")))
    assert paths == [["11", "0", "app.py:1:view", "6", "6", "10", "18"],
                     ["12", "11", "app.py:2:idle", "0", "0", "0", "0"]]
    assert tsv(conn, first("SELECT service, endpoint, commit, unit, flag_value, sum(requests)")) \
        == [["shop", "cart", "c1", "instructions", "", "6"]]
    assert tsv(conn, first("SELECT service, endpoint, commit, unit, flag_value, function")) == [
        ["shop", "cart", "c1", "instructions", "", "app.py:1:view", "10", "50", "2", "2"]]
    marker = next(q for q in queries if "profile_sums_local WHERE (batch_sender" in q)
    assert tsv(conn, marker) == []
    assert tsv(conn, marker.replace("('sender-a', 1)", "('s', 2)")) == [["s", "2", "1"]]
    # Every profile and efficiency read runs (the hostile slices included).
    for q in queries:
        conn.query(local(q), "TSV")

    # The peak-minute sums kept by the engine from the records.
    conn.query("""INSERT INTO ledger.records_local
        (day, start_us, service, endpoint, sample_rate, instructions, cpu_ns, user) VALUES
        ('2025-12-05', 1764892800000000, 'shop', 'cart', 0.5, 3000, 1000, 'u1'),
        ('2025-12-05', 1764892810000000, 'shop', 'cart', 1, NULL, 2000, 'u2')""")
    cells = tsv(conn, first("SELECT service, toUInt32(minute) AS m"))
    assert cells == [["shop", "1764892800", "cart", "2", "1", "3", "2", "6000", "4000"]]
    users = next(q for q in queries
                 if q.startswith("SELECT uniqExact(user)") and "service = 'shop'" in q)
    assert tsv(conn, users) == [["2"]]


def test_hour_minute_and_raw_parts_count_each_record_once(conn):
    """Queries 7-10 of the printer read hour rollups for whole hours, minute
    rollups for the other whole minutes and raw records for the sub-minute
    edges of 2025-12-05 00:00:01.234567 .. 03:02:07.654321: every record in
    the range counted once, none outside it."""
    sql = statements("ledger")
    for stmt in (s["sql"] for s in sql if s["kind"] == "schema"):
        conn.query(stmt)
    queries = [s["sql"] for s in sql if s["kind"] == "query"]
    day = 1764892800000000
    at = {  # offset from midnight (us): in the range of queries 7, 8 and 10
        1_000_000: False, 1_234_566: False, 1_234_567: True, 1_800_000_000: True,
        3_599_999_999: True, 3_600_000_000: True, 10_799_999_999: True,
        10_800_000_000: True, 10_927_654_320: True, 10_927_654_321: False,
    }
    rows = ", ".join(
        f"('2025-12-05', {day + t}, 'shop', 'cart', 200, 'web-{i % 2}', 'b7e41d0', 0.25, {t % 997})"
        for i, t in enumerate(at))
    conn.query("INSERT INTO ledger.records_local (day, start_us, service, endpoint, status, host,"
               f" commit, sample_rate, cpu_ns) VALUES {rows}")
    inside = [t for t, x in at.items() if x]

    def answer(i):
        out = conn.query(local(queries[i]), "TSV").bytes().decode().strip()
        return [line.split("\t") for line in out.splitlines()]

    for i in (7, 10):  # by service
        assert "rollup_hour_coarse" in queries[i] and "rollup_minute_coarse" in queries[i]
        (row,) = answer(i)
        assert row[:4] == ["shop", "0", str(len(inside)), str(4 * len(inside))]
        assert float(row[4 + 3 * 7 - 1]) == 4 * sum(t % 997 for t in inside)  # cpu_ns est_total
    by_host = answer(8)  # fine tier, one day bucket
    assert "ledger.rollup_hour " in queries[8]
    assert sorted(int(r[2]) for r in by_host) == sorted(
        sum(1 for i, (t, x) in enumerate(at.items()) if x and i % 2 == h) for h in (0, 1))
    (row,) = answer(9)  # [01:00, 03:00): hour rollups only
    assert "rollup_minute" not in queries[9] and "ledger.records" not in queries[9]
    assert row[:3] == ["b7e41d0", "0", "2"]


def test_hour_rollups_start_is_read_from_schema_version(conn):
    """HourRollupsFromSql(): the lowest version and when version 3 came; a
    database created at version 3 answers 3 (its hour rollups hold everything)."""
    sql = statements("ledger")
    for stmt in (s["sql"] for s in sql if s["kind"] == "schema"):
        conn.query(stmt)
    (query,) = [s["sql"] for s in sql if s["kind"] == "query" and "minIf(applied" in s["sql"]]
    conn.query("INSERT INTO ledger.schema_version VALUES (3, toDateTime(1764896400))")
    assert conn.query(query, "TSV").bytes().decode().split() == ["3", "1764896400"]
    conn.query("INSERT INTO ledger.schema_version VALUES (2, toDateTime(1764892800))")
    assert conn.query(query, "TSV").bytes().decode().split() == ["2", "1764896400"]
