"""The counters as the installed package exposes them, on this machine's kernel."""

import json
import shutil
import subprocess
import threading

import pytest

import cpuledger


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
    assert report["selected"] == cpuledger.Counters().source
    names = [s["source"] for s in report["sources"]]
    assert names == ["hardware", "task_clock", "thread_cputime"]
    for s in report["sources"]:
        if s["available"]:
            assert s["read_ns"] > 0
        else:
            assert s["reason"]
