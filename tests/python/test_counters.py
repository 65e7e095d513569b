"""The counters as the installed package exposes them, on this machine's kernel."""

import json
import re
import shutil
import subprocess
import threading
from pathlib import Path
from typing import get_args

import pytest

import cpuledger
from cpuledger import _config
from cpuledger._native import counter_sources

ROOT = Path(__file__).resolve().parents[2]


def spin(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def test_auto_source_reports_what_it_used_and_why_not_better():
    c = cpuledger.Counters()
    assert c.source in ("hardware", "task_clock", "thread_cputime")
    r = c.read()
    assert r["source"] == c.source
    if c.source == "hardware":
        assert r["instructions"] is not None
    else:
        # No PMU: instructions are marked missing, never a silent zero, and
        # the reason hardware was skipped is given.
        assert r["instructions"] is None and r["cycles"] is None
        assert any(f.startswith("hardware:") for f in c.fallbacks)


@pytest.mark.parametrize("source", ["task_clock", "thread_cputime"])
def test_cpu_ns_grows_with_work(source):
    c = cpuledger.Counters(source)
    a = c.read()
    spin(100_000)
    b = c.read()
    spin(1_000_000)
    d = c.read()
    small, large = b["cpu_ns"] - a["cpu_ns"], d["cpu_ns"] - b["cpu_ns"]
    assert small > 0
    assert large > 3 * small


def test_reading_from_another_thread_is_refused():
    c = cpuledger.Counters()
    errors = []

    def other():
        try:
            c.read()
        except RuntimeError as e:
            errors.append(str(e))

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert errors and "thread that created it" in errors[0]


def test_unknown_source_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown counter source 'tsc'"):
        cpuledger.Counters("tsc")


def test_env_var_forces_the_source(monkeypatch):
    monkeypatch.setenv("CPULEDGER_COUNTER_SOURCE", "thread_cputime")
    assert cpuledger.Counters().source == "thread_cputime"


def test_installed_cli_doctor_json():
    exe = shutil.which("cpuledger")
    assert exe, "pip install . must put the cpuledger binary on PATH"
    out = subprocess.run([exe, "doctor", "--json"], capture_output=True, text=True, check=True)
    report = json.loads(out.stdout)
    names = [s["source"] for s in report["sources"]]
    assert names == [name for name, _code, _unit in counter_sources()]
    # Sources of one unit are chosen between by timing, so the doctor and this
    # process may pick different ones when their costs are close: compare units.
    unit = {name: unit for name, _code, unit in counter_sources()}
    assert unit[report["selected"]] == cpuledger.Counters().primary_unit
    chosen = [c for c in report["choice"] if c["chosen"]]
    assert [c["source"] for c in chosen] == [report["selected"]]
    if len(report["choice"]) > 1:  # the cheapest of the timed candidates won
        assert chosen[0]["read_ns"] == min(c["read_ns"] for c in report["choice"])
    for s in report["sources"]:
        if s["available"]:
            assert s["read_ns"] > 0
        else:
            assert s["reason"]


def test_python_and_native_take_the_same_counter_source_spellings():
    """One table (src/counters kSources): _config validates against it, the
    literals of _config and _native.pyi spell it, and the native parser takes
    exactly those names."""
    table = tuple(name for name, _code, _unit in counter_sources())
    assert _config.COUNTER_SOURCES == ("auto", *table)
    assert get_args(_config.CounterSourceName) == _config.COUNTER_SOURCES
    pyi = (ROOT / "python" / "cpuledger" / "_native.pyi").read_text()
    literal = re.search(r"^CounterSourceName = Literal\[(.*)\]$", pyi, re.M).group(1)
    assert tuple(re.findall(r'"([^"]+)"', literal)) == _config.COUNTER_SOURCES

    check = next(s.check for s in _config.SETTINGS if s.name == "COUNTER_SOURCE")
    for name in _config.COUNTER_SOURCES:
        assert check("COUNTER_SOURCE", name) == name
        try:
            cpuledger.Counters(name)
        except RuntimeError:
            pass  # accepted, but not available on this machine (no PMU)
    for other in ("task-clock", "thread-cputime", "cputime", "Hardware", "tsc"):
        with pytest.raises(_config.ConfigError, match="COUNTER_SOURCE"):
            check("COUNTER_SOURCE", other)
        with pytest.raises(ValueError, match=f"unknown counter source '{other}'"):
            cpuledger.Counters(other)


def test_store_codes_of_the_counter_sources_do_not_move():
    # The SQLite store keeps these codes on disk; renumbering misreads old files.
    assert {name: code for name, code, _unit in counter_sources()} == {
        "hardware": 1, "task_clock": 2, "thread_cputime": 3}
