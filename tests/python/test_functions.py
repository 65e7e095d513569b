"""Function entities end to end: records with profiles posted as NDJSON to a
real `cpuledger serve`, then /v1/query/functions, `cpuledger report
--functions` and `cpuledger diff`, checked against numbers computed here."""

from __future__ import annotations

import json
import subprocess
import time
from urllib.parse import urlencode

from conftest import cpuledger_exe

NOW_US = int(time.time() * 1e6)
VIEW = {"file": "shop/views.py", "line": 10, "name": "order_view"}
SERIALIZE = {"file": "shop/serializers.py", "line": 5, "name": "serialize"}
TAX = {"file": "shop/tax.py", "line": 7, "name": "compute_tax"}
TAX_COST = 50_000


def view_self(i):
    return 1000 + 10 * i


def profile(i, with_tax):
    """view -> serialize (2 calls, 400 in all), and in commit B view -> compute_tax."""
    functions = [VIEW, SERIALIZE] + ([TAX] if with_tax else [])
    tax = TAX_COST if with_tax else 0
    nodes = [
        {"parent": 0, "function": 0, "calls": 0, "primitive_calls": 0, "self_cost": 0, "total_cost": 0},
        {"parent": 0, "function": 0, "calls": 1, "primitive_calls": 1, "self_cost": view_self(i),
         "total_cost": view_self(i) + 400 + tax},
        {"parent": 1, "function": 1, "calls": 2, "primitive_calls": 2, "self_cost": 400, "total_cost": 400},
    ]
    if with_tax:
        nodes.append({"parent": 1, "function": 2, "calls": 1, "primitive_calls": 1, "self_cost": tax,
                      "total_cost": tax})
    return {"unit": "cpu_ns", "source": "task_clock", "mode": "exact", "functions": functions,
            "nodes": nodes, "requests": 1}


def records(commit, n, profiled, start_us):
    out = []
    for i in range(n):
        rec = {
            "service": "shop", "endpoint": "/orders/", "method": "GET", "status": 200, "host": "h1",
            "commit": commit, "start_time_unix_us": start_us + i * 1_000_000, "wall_us": 3000,
            "cpu_ns": 2_000_000, "counter_source": "task_clock", "sample_rate": 1.0,
        }
        if i < profiled:
            rec["profile"] = profile(i, with_tax=commit == "B")
        out.append(rec)
    return out


def load(server):
    http = server.http()
    start = NOW_US - 10 * 60 * 1_000_000
    for commit, n, profiled in (("A", 10, 6), ("B", 8, 4)):
        status, body = http.post_ndjson(records(commit, n, profiled, start))
        assert status == 200, body
        assert json.loads(body)["accepted"] == n
    return http


def functions(http, **params):
    return http.get_json("/v1/query/functions?" + urlencode(params))


def run_cli(*args):
    p = subprocess.run([cpuledger_exe(), *args], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    return p.stdout


def test_functions_are_per_profiled_request(server):
    http = load(server)
    body = functions(http, since="1h", service="shop", endpoint="/orders/", commit="A", sort="total")
    assert body["unit"] == "cpu_ns"
    assert body["profiled_requests"] == 6  # the unprofiled records do not count
    by_name = {f["name"]: f for f in body["functions"]}
    assert set(by_name) == {"order_view", "serialize"}
    assert body["functions"][0]["name"] == "order_view"  # the largest total
    mean_view_self = sum(view_self(i) for i in range(6)) / 6
    view = by_name["order_view"]
    assert view["file"] == "shop/views.py" and view["line"] == 10
    assert view["calls"] == 1
    assert abs(view["self"] - mean_view_self) < 1e-6
    assert abs(view["total"] - (mean_view_self + 400)) < 1e-6
    ser = by_name["serialize"]
    assert ser["calls"] == 2 and ser["self"] == 400 and ser["total"] == 400
    assert [f["name"] for f in ser["top_paths"][0]["path"]] == ["order_view", "serialize"]

    body = functions(http, since="1h", commit="B", sort="self", limit=1)
    assert body["profiled_requests"] == 4
    assert body["truncated"] is True
    [tax] = body["functions"]
    assert tax["name"] == "compute_tax" and tax["self"] == TAX_COST

    # No commit filter: both commits, 10 profiled requests.
    body = functions(http, since="1h", service="shop")
    assert body["profiled_requests"] == 10
    assert abs({f["name"]: f for f in body["functions"]}["compute_tax"]["self"] - TAX_COST * 4 / 10) < 1e-6

    # Bad parameters are the client's fault.
    status, _ = http.request("GET", "/v1/query/functions?sort=bogus")
    assert status == 400
    status, _ = http.request("GET", "/v1/query/diff?base_commit=A")
    assert status == 400
    status, _ = http.request("GET", "/v1/query/diff?base_commit=A&target_commit=nope")
    assert status == 404


def test_diff_names_the_added_helper_first(server):
    http = load(server)
    body = http.get_json("/v1/query/diff?" + urlencode(
        {"since": "1h", "service": "shop", "endpoint": "/orders/", "base_commit": "A", "target_commit": "B"}))
    assert body["base"] == {"commit": "A", "profiled_requests": 6}
    assert body["target"] == {"commit": "B", "profiled_requests": 4}
    first = body["functions"][0]
    assert first["name"] == "compute_tax"
    assert first["before_total"] == 0 and first["after_total"] == TAX_COST
    assert first["delta_total"] == TAX_COST
    assert [f["name"] for f in first["paths"][0]["path"]] == ["order_view", "compute_tax"]

    args = ["diff", "--server", server.url, "--since", "1h", "--service", "shop", "--endpoint", "/orders/",
            "--base", "A", "--target", "B"]
    out = run_cli(*args)
    table = [line for line in out.splitlines() if line.strip().startswith("1 ")]
    assert table and "compute_tax (shop/tax.py:7)" in table[0], out
    assert "order_view > compute_tax" in out, out
    as_json = json.loads(run_cli(*args, "--json", "--limit", "1"))
    assert [f["name"] for f in as_json["functions"]] == ["compute_tax"]


def test_report_functions_prints_the_helper(server):
    load(server)
    out = run_cli("report", "--functions", "--server", server.url, "--since", "1h", "--where", "service=shop",
                  "--where", "endpoint=/orders/", "--where", "commit=B", "--sort", "self")
    lines = out.splitlines()
    assert "4 profiled requests" in lines[0], out
    assert "compute_tax (shop/tax.py:7)" in lines[3], out  # header, rule, then the heaviest
    assert "order_view > compute_tax" in lines[3], out
    as_json = json.loads(run_cli("report", "--functions", "--server", server.url, "--since", "1h",
                                 "--where", "commit=B", "--json"))
    assert as_json["functions"][0]["name"] == "compute_tax"
    p = subprocess.run([cpuledger_exe(), "report", "--functions", "--server", server.url, "--where", "host=h1"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "service=, endpoint= or commit=" in p.stderr


def test_flag_diff_names_the_flags_work(server):
    """Within commit A, requests with new_tax=on also run compute_tax: the
    diff of the flag's values (API and `cpuledger diff --flag`) names it."""
    http = server.http()
    recs = []
    for i, rec in enumerate(records("A", 12, 12, NOW_US - 10 * 60 * 1_000_000)):
        on = i % 3 == 0
        rec["flags"] = {"new_tax": "on" if on else "off"}
        rec["profile"] = profile(i, with_tax=on)
        recs.append(rec)
    status, body = http.post_ndjson(recs)
    assert status == 200, body
    body = http.get_json("/v1/query/diff?" + urlencode(
        {"since": "1h", "service": "shop", "commit": "A", "flag": "new_tax", "base_value": "off",
         "target_value": "on"}))
    assert body["base"] == {"commit": "A", "flag": "new_tax", "flag_value": "off", "profiled_requests": 8}
    assert body["target"]["profiled_requests"] == 4
    assert body["functions"][0]["name"] == "compute_tax"
    assert body["functions"][0]["delta_self"] == TAX_COST
    tree = http.get_json("/v1/query/tree?" + urlencode(
        {"since": "1h", "service": "shop", "flag": "new_tax", "flag_value": "off"}))
    assert tree["profiled_requests"] == 8
    assert "compute_tax" not in json.dumps(tree["root"])

    out = run_cli("diff", "--server", server.url, "--since", "1h", "--service", "shop", "--flag", "new_tax",
                  "--commit", "A", "--base", "off", "--target", "on")
    assert out.startswith("base new_tax=off (8 profiled requests) -> target new_tax=on (4 profiled requests)"), out
    table = [line for line in out.splitlines() if line.strip().startswith("1 ")]
    assert table and "compute_tax (shop/tax.py:7)" in table[0], out
