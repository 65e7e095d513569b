"""`cpuledger serve` end to end: a real server process on loopback, a real
SQLite file, records sent over HTTP, every aggregate checked against values
computed here from the records we generated."""

from __future__ import annotations

import json
import math
import random
import re
import subprocess
import time

import pytest

from conftest import ServerProcess, cpuledger_exe

NOW_US = int(time.time() * 1e6)
ENDPOINTS = ["/a/", "/b/<int:id>/", "/c/"]


def make_records(n=600, seed=7, start_us=None, sample_rate=0.25, commit="c1", with_instr=True):
    rng = random.Random(seed)
    start_us = start_us or NOW_US - 30 * 60 * 1_000_000
    out = []
    for i in range(n):
        ep = ENDPOINTS[i % len(ENDPOINTS)]
        scale = {"/a/": 1.0, "/b/<int:id>/": 3.0, "/c/": 10.0}[ep]
        cpu_ns = int(rng.lognormvariate(math.log(2e6 * scale), 0.5))
        rec = {
            "service": "shop",
            "endpoint": ep,
            "method": "GET",
            "status": rng.choice([200, 200, 200, 404, 500]),
            "host": f"h{i % 4}",
            "cluster": "east" if i % 2 else "west",
            "region": "us",
            "commit": commit,
            "flags": {"beta": "on" if i % 3 == 0 else "off"},
            "user": f"user{rng.randrange(50)}",
            "start_time_unix_us": start_us + i * 1_000_000,
            "wall_us": cpu_ns // 1000 + rng.randrange(5000),
            "cpu_ns": cpu_ns,
            "counter_source": "hardware" if with_instr else "task_clock",
            "db_us": rng.randrange(3000),
            "db_calls": rng.randrange(5),
            "cache_us": rng.randrange(500),
            "cache_calls": rng.randrange(3),
            "sample_rate": sample_rate,
        }
        if with_instr:
            rec["instructions"] = int(cpu_ns * 2.5)
            rec["cycles"] = cpu_ns * 3
        out.append(rec)
    return out


def nearest_rank(values, q):
    s = sorted(values)
    return s[max(0, math.ceil(q * len(s)) - 1)]


def check_quantile(got, values, q, rel=0.03):
    """A histogram quantile is within a few % of the exact one, or between its neighbours."""
    s = sorted(values)
    exact = nearest_rank(values, q)
    k = max(0, math.ceil(q * len(s)) - 1)
    lo, hi = s[max(0, k - 1)], s[min(len(s) - 1, k + 1)]
    assert abs(got - exact) <= rel * exact or lo * (1 - rel) <= got <= hi * (1 + rel), (q, got, exact)


def breakdown(http, **params):
    from urllib.parse import urlencode

    query = []
    for k, v in params.items():
        for item in v if isinstance(v, list) else [v]:
            query.append((k, item))
    return http.get_json("/v1/query/breakdown?" + urlencode(query))


def test_aggregates_match_independent_computation(server):
    http = server.http()
    recs = make_records()
    status, body = http.post_ndjson(recs)
    assert status == 200, body
    assert json.loads(body)["accepted"] == len(recs)

    result = breakdown(http, group_by="endpoint", since="2h")
    rows = {r["keys"]["endpoint"]: r for r in result["rows"]}
    assert set(rows) == set(ENDPOINTS)
    for ep in ENDPOINTS:
        mine = [r for r in recs if r["endpoint"] == ep]
        row = rows[ep]
        assert row["samples"] == len(mine)
        assert row["est_requests"] == pytest.approx(len(mine) / 0.25)
        for measure in ("instructions", "cpu_ns", "wall_us"):
            vals = [r[measure] for r in mine]
            dist = row[measure]
            assert dist["n"] == len(mine)
            assert dist["mean"] == pytest.approx(sum(vals) / len(vals), rel=1e-9)
            assert dist["est_total"] == pytest.approx(sum(vals) / 0.25, rel=1e-9)
            for q, key in ((0.5, "p50"), (0.9, "p90"), (0.99, "p99")):
                check_quantile(dist[key], vals, q)
        assert row["db_us_mean"] == pytest.approx(sum(r["db_us"] for r in mine) / len(mine))
        assert row["db_calls_mean"] == pytest.approx(sum(r["db_calls"] for r in mine) / len(mine))
        assert row["cache_us_mean"] == pytest.approx(sum(r["cache_us"] for r in mine) / len(mine))
    # Heaviest first: /c/ costs ~10x /a/.
    assert result["rows"][0]["keys"]["endpoint"] == "/c/"


def test_group_by_several_dimensions_flags_and_filters(server):
    http = server.http()
    recs = make_records(n=900, seed=3)
    assert http.post_ndjson(recs)[0] == 200

    result = breakdown(http, group_by="endpoint,status,flag:beta", since="2h", limit="1000")
    expected = {}
    for r in recs:
        key = (r["endpoint"], str(r["status"]), r["flags"]["beta"])
        expected[key] = expected.get(key, 0) + 1
    got = {(r["keys"]["endpoint"], r["keys"]["status"], r["keys"]["flag:beta"]): r["samples"] for r in result["rows"]}
    assert got == expected

    # Same dimension ORs, different dimensions AND.
    result = breakdown(http, group_by="endpoint", since="2h",
                       where=["status=404", "status=500", "host=h1"])
    want = [r for r in recs if r["status"] in (404, 500) and r["host"] == "h1"]
    assert sum(r["samples"] for r in result["rows"]) == len(want)

    # A flag nobody carries is "" for everyone.
    result = breakdown(http, group_by="flag:nope", since="2h")
    assert [(r["keys"]["flag:nope"], r["samples"]) for r in result["rows"]] == [("", len(recs))]

    # Grouping by user goes to raw samples.
    result = breakdown(http, group_by="user", since="2h", limit="1000")
    assert result["used_rollups"] is False
    assert sum(r["samples"] for r in result["rows"]) == len(recs)
    assert len(result["rows"]) == len({r["user"] for r in recs})


def test_time_series_buckets(server):
    http = server.http()
    start = (NOW_US // 60_000_000 - 50) * 60_000_000  # minute-aligned, 50 minutes ago
    recs = make_records(n=300, start_us=start)  # one per second: 5 minutes
    assert http.post_ndjson(recs)[0] == 200
    ts = http.get_json("/v1/query/timeseries?since=2h&group_by=service")
    buckets = {r["bucket_start_us"]: r["samples"] for r in ts["rows"]}
    assert buckets == {start + m * 60_000_000: 60 for m in range(5)}


def test_mixed_sample_rates_scale_totals(server):
    http = server.http()
    a = make_records(n=100, seed=1, sample_rate=0.5)
    b = make_records(n=100, seed=2, sample_rate=0.01)
    assert http.post_ndjson(a + b)[0] == 200
    row = breakdown(http, group_by="service", since="2h")["rows"][0]
    assert row["est_requests"] == pytest.approx(100 / 0.5 + 100 / 0.01)
    want = sum(r["cpu_ns"] / r["sample_rate"] for r in a + b)
    assert row["cpu_ns"]["est_total"] == pytest.approx(want, rel=1e-9)


def test_records_without_pmu_have_no_instructions(server):
    http = server.http()
    assert http.post_ndjson(make_records(n=30, with_instr=False))[0] == 200
    row = breakdown(http, group_by="service", since="2h")["rows"][0]
    assert row["instructions"] is None  # marked missing, not zero
    assert row["cpu_ns"]["n"] == 30


def test_protobuf_round_trip_and_dedup(server, record_pb2):
    http = server.http()
    batch = record_pb2.Batch(sender="worker-1", sequence=1, dropped_records=7)
    for r in make_records(n=50):
        rec = batch.records.add(
            service=r["service"], endpoint=r["endpoint"], method=r["method"], status=r["status"],
            host=r["host"], cluster=r["cluster"], region=r["region"], commit="pb",
            user=r["user"], start_time_unix_us=r["start_time_unix_us"], wall_us=r["wall_us"],
            sample_rate=r["sample_rate"])
        rec.cpu.cpu_ns = r["cpu_ns"]
        rec.cpu.instructions = r["instructions"]
        rec.cpu.counter_source = "hardware"
        rec.flags.update(r["flags"])
        rec.db.calls, rec.db.wall_us = r["db_calls"], r["db_us"]
    body = batch.SerializeToString()
    status, out = http.request("POST", "/v1/ingest", body, "application/x-protobuf")
    assert status == 200 and json.loads(out) == {"accepted": 50, "tallies": 0, "duplicate": False}
    # The same batch again (a replay after a lost acknowledgement) is stored once.
    status, out = http.request("POST", "/v1/ingest", body, "application/x-protobuf")
    assert status == 200 and json.loads(out)["duplicate"] is True
    rows = breakdown(http, group_by="commit", since="2h")["rows"]
    assert [(r["keys"]["commit"], r["samples"]) for r in rows] == [("pb", 50)]
    # The recorder's own drops are reported once, like its records.
    assert metric(http, "cpuledger_client_dropped_records_total", 'reason="reported"') == 7
    assert rows[0]["instructions"]["mean"] == pytest.approx(
        sum(r.cpu.instructions for r in batch.records) / 50)


def metric(http, name, label):
    text = http.request("GET", "/metrics")[1].decode()
    m = re.search(re.escape(name) + r"\{[^}]*" + re.escape(label) + r"[^}]*\} (\S+)", text)
    return float(m.group(1)) if m else None


def test_bad_input_is_rejected_clearly_counted_and_harmless(tmp_path):
    cfg = tmp_path / "cpuledger.toml"
    cfg.write_text('max_body_bytes = 20000\nraw_retention = "30d"\n')
    s = ServerProcess(tmp_path / "data", extra=["--config", str(cfg)]).start()
    try:
        http = s.http()
        good = make_records(n=10)
        assert http.post_ndjson(good)[0] == 200

        cases = []
        # Malformed: a line that is not JSON.
        st, body = http.request("POST", "/v1/ingest", b'{"service": "x"\n{not json', "application/x-ndjson")
        cases.append((st, body, 400, "line 1"))
        # Wrong type.
        bad = dict(good[0], wall_us="fast")
        st, body = http.post_ndjson([good[1], bad])
        cases.append((st, body, 400, "wall_us"))
        # Out of range.
        st, body = http.post_ndjson([dict(good[0], sample_rate=1.5)])
        cases.append((st, body, 400, "sample_rate"))
        # Truncated protobuf.
        st, body = http.request("POST", "/v1/ingest", b"\x0a\xff\x01\x08", "application/x-protobuf")
        cases.append((st, body, 400, "protobuf"))
        # Oversized.
        st, body = http.post_ndjson(make_records(n=200))
        cases.append((st, body, 413, ""))
        # Unknown content type.
        st, body = http.request("POST", "/v1/ingest", b"{}", "text/plain")
        cases.append((st, body, 415, "ndjson"))
        for st, body, want, needle in cases:
            assert st == want, (st, body)
            msg = json.loads(body)["error"]
            assert needle in msg, msg

        assert metric(http, "cpuledger_ingest_batches_total", 'result="malformed"') == 4
        assert metric(http, "cpuledger_ingest_batches_total", 'result="too_large"') == 1
        assert metric(http, "cpuledger_ingest_batches_total", 'result="unsupported_type"') == 1
        assert metric(http, "cpuledger_ingest_records_total", 'result="accepted"') == 10
        # Nothing of the rejected batches was stored: the good record in the
        # wrong-type batch was not stored either (batches are all or nothing).
        rows = breakdown(http, group_by="service", since="2h")["rows"]
        assert sum(r["samples"] for r in rows) == 10
        assert s.proc.poll() is None  # and the server is still up
    finally:
        s.stop()


def test_token_is_enforced(tmp_path):
    s = ServerProcess(tmp_path / "data", token="s3cret").start()
    try:
        assert s.http(token=None).request("GET", "/healthz")[0] == 200
        assert s.http(token=None).request("GET", "/v1/query/breakdown")[0] == 401
        assert s.http(token="wrong").post_ndjson(make_records(n=1))[0] == 401
        assert s.http(token="wrong").request("GET", "/metrics")[0] == 401
        # Every route of src/server/api.cc but /healthz, and paths no route has:
        # the token is checked before routing, so no route can be left out.
        for method, path in [("POST", "/v1/ingest"), ("GET", "/v1/query/breakdown"),
                             ("GET", "/v1/query/timeseries"), ("GET", "/v1/query/efficiency"),
                             ("GET", "/v1/query/deploys"), ("GET", "/v1/query/functions"),
                             ("GET", "/v1/query/diff"), ("POST", "/v1/detect"), ("GET", "/v1/alerts"),
                             ("GET", "/metrics"), ("GET", "/v1/nothing"), ("DELETE", "/v1/alerts")]:
            body = b"{}" if method == "POST" else None
            assert s.http(token=None).request(method, path, body)[0] == 401, (method, path)
        assert s.http().post_ndjson(make_records(n=3))[0] == 200
        rows = breakdown(s.http(), group_by="service", since="2h")["rows"]
        assert rows[0]["samples"] == 3
        assert metric(s.http(), "cpuledger_http_unauthorized_total", 'route="any"') == 3 + 12
    finally:
        s.stop()


def test_restart_keeps_data(tmp_path):
    s = ServerProcess(tmp_path / "data").start()
    recs = make_records(n=120)
    assert s.http().post_ndjson(recs)[0] == 200
    assert s.stop() == 0
    s2 = ServerProcess(tmp_path / "data").start()
    try:
        rows = breakdown(s2.http(), group_by="endpoint", since="2h")["rows"]
        assert sum(r["samples"] for r in rows) == 120
    finally:
        s2.stop()


def test_peak_minute_efficiency(server):
    """Crafted: three minutes; the middle one has the most CPU. Tallies say
    how many requests each endpoint served and which users were active."""
    http = server.http()
    base_min = NOW_US // 60_000_000 - 20
    lines = []
    # Per minute: (requests of /a/, requests of /c/, active users); samples cost
    # /a/ = 1000 instructions, /c/ = 10000.
    plan = {0: (100, 10, 40), 1: (300, 50, 120), 2: (200, 5, 90)}
    for m, (na, nc, users) in plan.items():
        minute_s = (base_min + m) * 60
        for ep, cost in (("/a/", 1000), ("/c/", 10000)):
            for k in range(4):  # a few samples per endpoint and minute
                lines.append({"service": "eff", "endpoint": ep, "start_time_unix_us": minute_s * 1_000_000 + k,
                              "wall_us": 10, "cpu_ns": cost // 2, "instructions": cost,
                              "counter_source": "hardware", "sample_rate": 0.01, "user": "x"})
        # Two workers report that minute; users overlap between them.
        half = users // 2
        lines.append({"type": "tally", "minute_unix": minute_s, "service": "eff", "host": "w1", "sender": "w1",
                      "endpoints": {"/a/": na // 2, "/c/": nc // 2}, "users": [f"u{i}" for i in range(half + 5)]})
        lines.append({"type": "tally", "minute_unix": minute_s, "service": "eff", "host": "w2", "sender": "w2",
                      "endpoints": {"/a/": na - na // 2, "/c/": nc - nc // 2},
                      "users": [f"u{i}" for i in range(half - 5, users)]})
    assert http.post_ndjson(lines)[0] == 200
    eff = http.get_json("/v1/query/efficiency?since=1h&service=eff")["services"]
    assert len(eff) == 1
    e = eff[0]
    assert e["unit"] == "instructions"
    assert e["from_tallies"] is True
    assert e["peak_minute_unix"] == (base_min + 1) * 60
    assert e["requests"] == pytest.approx(350)
    cpu = 300 * 1000 + 50 * 10000
    assert e["cpu_total"] == pytest.approx(cpu, rel=1e-6)
    assert e["active_users"] == pytest.approx(120, rel=0.05)  # HyperLogLog
    assert e["per_active_user"] == pytest.approx(cpu / e["active_users"], rel=1e-6)
    eps = {x["endpoint"]: x for x in e["endpoints"]}
    assert eps["/c/"]["cpu_total"] == pytest.approx(500_000, rel=1e-6)
    assert eps["/a/"]["requests"] == pytest.approx(300)
    assert e["endpoints"][0]["endpoint"] == "/c/"  # heaviest first


def test_report_cli_prints_grouped_table(server):
    http = server.http()
    recs = make_records(n=300)
    assert http.post_ndjson(recs)[0] == 200
    exe = cpuledger_exe()
    out = subprocess.run([exe, "report", "--server", server.url, "--group-by", "endpoint,commit",
                          "--since", "2h"], capture_output=True, text=True, check=True).stdout
    header, rule, *rows = out.strip().splitlines()
    assert header.split()[:4] == ["endpoint", "commit", "samples", "est_requests"]
    assert header.split()[-4:] == ["db_ms_mean", "db_calls_mean", "cache_ms_mean", "cache_calls_mean"]
    assert {r.split()[0] for r in rows} == set(ENDPOINTS)
    assert all(r.split()[1] == "c1" for r in rows)
    got = {r.split()[0]: int(r.split()[2]) for r in rows}
    assert got == {ep: sum(1 for r in recs if r["endpoint"] == ep) for ep in ENDPOINTS}

    js = json.loads(subprocess.run([exe, "report", "--server", server.url, "--group-by", "status",
                                    "--since", "2h", "--json"], capture_output=True, text=True,
                                   check=True).stdout)
    assert sum(r["samples"] for r in js["rows"]) == 300

    csv_out = subprocess.run([exe, "report", "--server", server.url, "--group-by", "host", "--since", "2h",
                              "--where", "host=h2", "--csv"], capture_output=True, text=True, check=True).stdout
    lines = csv_out.strip().splitlines()
    assert lines[0].startswith("host,samples,")
    assert len(lines) == 2 and lines[1].startswith("h2,")

    bad = subprocess.run([exe, "report", "--server", server.url, "--group-by", "colour"],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "colour" in bad.stderr


def test_serve_rejects_bad_config(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('prot = 1\n')
    r = subprocess.run([cpuledger_exe(), "serve", "--config", str(cfg), "--data-dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "unknown key 'prot'" in r.stderr


def test_efficiency_without_active_users_says_n_a(server):
    records = make_records(n=30)
    for r in records:
        del r["user"]  # no user key configured: nobody is counted as active
    assert server.http().post_ndjson(records)[0] == 200
    out = subprocess.run([cpuledger_exe(), "report", "--server", server.url, "--efficiency", "--since", "2h"],
                         capture_output=True, text=True, check=True).stdout
    assert "shop: n/a (no active users) per active user" in out, out
    assert "0.00" not in out.split("\n", 1)[0], out
