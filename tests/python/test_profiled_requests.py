"""Profiles from the Django middleware, end to end: a view whose second
version added an expensive helper, served by gunicorn at two commits,
profiled through the middleware (PROFILE_RATE=1) with the default source
(apportioned) and with the `cpu` source (measured per frame); the server
turns the profiles into function entities, and `cpuledger diff` between the
two commits names the helper first."""

from __future__ import annotations

import subprocess
from urllib.parse import urlencode

import pytest

from conftest import cpuledger_exe
from test_middleware import Gunicorn, get, wait_samples


def serve_version(tmp_path, server, version: str, commit: str, source: str, requests: int = 12):
    app = Gunicorn(tmp_path, server.url, extra_env={
        "SHOP_VERSION": version, "CPULEDGER_COMMIT": commit, "CPULEDGER_PROFILE_RATE": "1",
        "CPULEDGER_PROFILE_SOURCE": source}, workers=1)
    try:
        for _ in range(requests):
            assert get(app.url + "/report/")[0] == 200
        wait_samples(server.http(), requests, where=[f"commit={commit}", "endpoint=/report/"])
    finally:
        app.stop()


@pytest.mark.parametrize("source", ["auto", "cpu"])
def test_diff_between_commits_names_the_added_helper(tmp_path, server, source):
    serve_version(tmp_path, server, "1", "v1", source)
    serve_version(tmp_path, server, "2", "v2", source)
    http = server.http()

    fns = http.get_json("/v1/query/functions?" + urlencode(
        {"since": "1h", "service": "shop", "endpoint": "/report/", "commit": "v2", "sort": "total"}))
    names = [f["name"] for f in fns["functions"]]
    assert "_expensive_helper" in names and "report" in names
    assert fns["profiled_requests"] == 12
    helper = next(f for f in fns["functions"] if f["name"] == "_expensive_helper")
    assert helper["calls"] == 1  # per profiled request
    assert helper["file"].endswith("shop/views.py")

    out = subprocess.run([cpuledger_exe(), "diff", "--server", server.url, "--since", "1h", "--service", "shop",
                          "--endpoint", "/report/", "--base", "v1", "--target", "v2"],
                         capture_output=True, text=True, check=True).stdout
    lines = [line for line in out.splitlines() if "_expensive_helper" in line or "report" in line]
    assert lines, out
    # The first ranked function is the helper, with the view on its call path.
    ranked = [line for line in out.splitlines() if line.strip() and line.lstrip()[:1].isdigit()]
    assert ranked and "_expensive_helper" in ranked[0], out
    assert "report" in out

    table = subprocess.run([cpuledger_exe(), "report", "--functions", "--server", server.url, "--since", "1h",
                            "--where", "commit=v2", "--where", "endpoint=/report/"],
                           capture_output=True, text=True, check=True).stdout
    assert "_expensive_helper" in table
    # Django's deep call paths keep their innermost frames in the top-path
    # column, marked as cut, not hundreds of characters of callers.
    rows = [line for line in table.splitlines() if "_expensive_helper" in line]
    assert rows and "… > " in rows[0] and rows[0].rstrip().endswith("_expensive_helper"), table


def profiled_requests(server, endpoint: str) -> int:
    return server.http().get_json("/v1/query/functions?" + urlencode(
        {"since": "1h", "service": "shop", "endpoint": endpoint, "commit": "floor"}))["profiled_requests"]


def test_a_quiet_endpoint_is_profiled_up_to_its_floor_and_a_busy_one_is_not(tmp_path, server):
    # PROFILE_RATE 0: every profile comes from the floor of 2 a minute (one worker).
    app = Gunicorn(tmp_path, server.url, extra_env={
        "CPULEDGER_COMMIT": "floor", "CPULEDGER_PROFILE_RATE": "0", "CPULEDGER_PROFILE_MIN_PER_MINUTE": "2"},
        workers=1)
    try:
        for i in range(2):
            assert get(app.url + "/report/", {"X-Request-ID": f"quiet{i}"})[0] == 200
        for i in range(60):
            assert get(app.url + "/hello/", {"X-Request-ID": f"busy{i}"})[0] == 200
        wait_samples(server.http(), 63, where=["commit=floor"])  # +1: the readiness probe, a /hello/
    finally:
        app.stop()
    # The quiet endpoint's first two requests of the minute are within the floor: both profiled.
    assert profiled_requests(server, "/report/") == 2
    # The busy one: its first two, then about 2 / (its requests so far) of the rest
    # (about 8 of 61 in one minute), never all of them.
    busy = profiled_requests(server, "/hello/")
    assert 2 <= busy <= 30, busy


def test_endpoint_rates_average_the_minutes_before_and_bound_a_burst():
    from cpuledger._runtime import EndpointRates

    now = [0.0]
    rates = EndpointRates(clock=lambda: now[0])
    assert rates.per_minute("/a/") == 1.0  # the first request of all: itself
    for _ in range(10):
        rates.note("/a/")
    assert rates.per_minute("/a/") == 11.0  # a burst: this minute's count so far, itself included
    now[0] = 60.0
    assert rates.per_minute("/a/") == 5.0  # the minute before, weighted 1/2 (nothing before it)
    for _ in range(10):
        rates.note("/a/")
    now[0] = 120.0
    assert rates.per_minute("/a/") == 7.5  # 10/2 + 5/2
    now[0] = 240.0
    assert rates.per_minute("/a/") == 1.875  # a minute with none between: (0/2 + 7.5/2) / 2
    assert rates.per_minute("/b/") == 1.0  # endpoints apart
