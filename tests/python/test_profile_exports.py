"""Profiler exports decoded with their schemas, and fast mode over coroutines
and generators.

The pprof file is decoded with src/profile/pprof.proto compiled for Python by
Debian's protoc at test time (protobuf is pinned in .venv). No timing
assertions here: costs are only checked for consistency.
"""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
from pathlib import Path

import pytest

from cpuledger import profile as cp
from test_profiler import fast_hook  # noqa: F401 — the fixture: fast mode on each hook

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pprof_pb2(tmp_path_factory):
    """src/profile/pprof.proto compiled for Python."""
    out = tmp_path_factory.mktemp("pprof_pb")
    subprocess.run(
        ["protoc", f"--python_out={out}", "-I", str(ROOT / "src"), str(ROOT / "src/profile/pprof.proto")],
        check=True,
    )
    # Loaded by path: the package directory "profile" would clash with the
    # stdlib's profile module.
    spec = importlib.util.spec_from_file_location("cpuledger_pprof_pb2", out / "profile" / "pprof_pb2.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# --- a small program with a known shape ------------------------------------------------


def leaf(n):
    return sum(range(n))


def middle(n):
    return leaf(n) + leaf(n // 2)


def program():
    total = 0
    for i in range(50):
        total += middle(200 + i)
    return total


def _pprof(tmp_path, pprof_pb2, source, mode):
    p = cp.Profiler(source, mode)
    cp.runcall(p, program)
    assert p.error is None
    out = tmp_path / f"{source}-{mode}.pb"
    cp.write(p, str(out), "pprof")
    prof = pprof_pb2.Profile()
    prof.ParseFromString(out.read_bytes())
    return p, prof


@pytest.mark.parametrize("source,mode", [("cpu", "exact"), ("cpu", "fast"), ("wall", "fast")])
def test_pprof_decodes_with_the_schema(tmp_path, pprof_pb2, source, mode):
    p, prof = _pprof(tmp_path, pprof_pb2, source, mode)
    strings = list(prof.string_table)
    assert strings[0] == ""  # pprof's rule: index 0 is the empty string

    # Sample types: (calls, count) then (the profile's unit, its unit of measure).
    types = [(strings[t.type], strings[t.unit]) for t in prof.sample_type]
    expected_unit = "nanoseconds" if p.unit == "cpu_ns" else "count"
    assert types == [("calls", "count"), (p.unit, expected_unit)]
    assert (strings[prof.period_type.type], strings[prof.period_type.unit]) == types[1]
    assert strings[prof.default_sample_type] == p.unit

    # Functions and locations: non-zero unique ids, every reference resolves.
    functions = {f.id: f for f in prof.function}
    assert 0 not in functions and len(functions) == len(prof.function)
    locations = {loc.id: loc for loc in prof.location}
    assert 0 not in locations and len(locations) == len(prof.location)
    for loc in prof.location:
        assert loc.line and all(line.function_id in functions for line in loc.line)
    names = {strings[f.name] for f in prof.function}
    assert {"program", "middle", "leaf"} <= names
    this_file = {strings[f.filename] for f in prof.function if strings[f.name] == "leaf"}
    assert this_file == {__file__}
    leaf_fn = next(f for f in prof.function if strings[f.name] == "leaf")
    assert leaf_fn.start_line == leaf.__code__.co_firstlineno

    def stack(sample):  # leaf first in pprof; outermost first here
        return [strings[functions[locations[i].line[0].function_id].name] for i in sample.location_id][::-1]

    by_stack = {tuple(stack(s)): s for s in prof.sample}
    assert all(s.location_id and all(i in locations for i in s.location_id) for s in prof.sample)
    assert by_stack[("program", "middle", "leaf")].value[0] == 100
    assert by_stack[("program", "middle")].value[0] == 50
    assert by_stack[("program",)].value[0] == 1
    if mode == "exact":  # builtins are their own frames in exact mode only
        assert by_stack[("program", "middle", "leaf", "<built-in method builtins.sum>")].value[0] == 100
    else:
        assert not any(n.startswith("<built-in") for n in names)

    # Sample values are self costs: they sum to the profile's total (the
    # top-level calls' totals, as every export computes them).
    rows = cp.nodes(p)
    top_total = sum(r.total_cost for r in rows if r.parent < 0)
    assert sum(s.value[1] for s in prof.sample) == top_total == sum(r.self_cost for r in rows)
    assert sum(s.value[0] for s in prof.sample) == sum(r.calls for r in rows)


# --- fast mode over coroutines and generators -------------------------------------------


def squares(n):
    for i in range(n):
        yield i * i


def gen_program():
    total = sum(squares(500))  # resumed by a builtin
    for x in squares(300):  # resumed by bytecode
        total += x
    return total + sum(x for x in range(100))  # a generator expression


async def fetch(i):
    await asyncio.sleep(0)
    return leaf(50 + i)


async def gather_all():
    results = await asyncio.gather(*(fetch(i) for i in range(20)))
    return sum(results)


def async_program():
    return asyncio.run(gather_all())


@pytest.mark.parametrize("mode", ["fast", "exact"])
def test_generators_counts_and_costs(mode, fast_hook):
    expected = gen_program()
    p = cp.Profiler("cpu", mode)
    assert cp.runcall(p, gen_program) == expected
    assert p.error is None
    fns = {k[2]: f for k, f in cp.by_function(p).items()}
    # One call per resume, as cProfile: n yields + the final resume that returns.
    assert fns["squares"].calls == 501 + 301
    assert fns["<genexpr>"].calls == 101
    assert fns["gen_program"].calls == 1
    rows = cp.nodes(p)
    top = [r for r in rows if r.parent < 0]
    assert [r.name for r in top] == ["gen_program"]
    assert all(r.self_cost <= r.total_cost for r in rows)
    assert top[0].total_cost >= fns["squares"].total_cost


def test_fast_mode_with_asyncio_coroutines(fast_hook):
    expected = async_program()
    p = cp.Profiler("cpu", "fast")
    assert cp.runcall(p, async_program) == expected
    assert p.error is None
    assert p.mode == "fast" and p.fast_hook == fast_hook
    fns = {k[2]: f for k, f in cp.by_function(p).items()}
    # Each fetch() coroutine is resumed twice (start, after sleep(0)): with
    # asyncio's own Python frames in between, only the coroutine's frames count.
    assert fns["fetch"].calls == 40
    assert fns["leaf"].calls == 20
    assert fns["gather_all"].calls >= 2
    # leaf runs inside fetch: every leaf path passes through fetch.
    rows = cp.nodes(p)
    for i, r in enumerate(rows):
        if r.name == "leaf":
            assert rows[r.parent].name == "fetch"
    assert all(r.self_cost <= r.total_cost for r in rows)
    assert sum(r.self_cost for r in rows) == sum(r.total_cost for r in rows if r.parent < 0)
    assert sum(r.self_cost for r in rows) > 0


def test_fast_mode_async_counts_equal_cprofile_for_python_functions(fast_hook):
    import cProfile

    pr = cProfile.Profile()
    pr.runcall(async_program)
    pr.create_stats()
    expected = {k: v[:2] for k, v in pr.stats.items() if k[0] != "~"}
    p = cp.Profiler("cpu", "fast")
    cp.runcall(p, async_program)
    got = {k: (f.primitive_calls, f.calls) for k, f in cp.by_function(p).items()}
    ours = {k: v for k, v in got.items() if k[2] in ("fetch", "leaf", "gather_all", "async_program")}
    theirs = {k: v for k, v in expected.items() if k[2] in ("fetch", "leaf", "gather_all", "async_program")}
    assert ours == theirs
