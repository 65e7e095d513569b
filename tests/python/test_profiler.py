"""The profiler hooks (cpuledger._native.Profiler) and `python -m cpuledger.profile`.

Call counts are checked against cProfile run over the same function in the
same process; costs only against generous bounds (one accuracy figure is
printed: run with -s to see it).
"""

from __future__ import annotations

import cProfile
import contextlib
import gc
import io
import json
import marshal
import os
import pstats
import subprocess
import sys
import threading
import time
import traceback
import types
from pathlib import Path

import pytest

from cpuledger import _native
from cpuledger import profile as cp

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
from profiled import programs  # noqa: E402

# cProfile counts its own disable() call; ours is not a PyCFunction and is not seen.
CPROFILE_DISABLE = ("~", 0, "<method 'disable' of '_lsprof.Profiler' objects>")
FIB = (programs.fib.__code__.co_filename, programs.fib.__code__.co_firstlineno, "fib")


@contextlib.contextmanager
def no_gc():
    """A collection mid-run calls finalizers and weakref callbacks (a
    WeakSet's _remove) in one profiled run and not in the other: counts are
    compared with the collector held off."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def cprofile_counts(fn) -> dict:
    pr = cProfile.Profile()
    with no_gc():
        pr.runcall(fn)
    pr.create_stats()
    return {k: (v[0], v[1]) for k, v in pr.stats.items() if k != CPROFILE_DISABLE}


def our_counts(fn, mode="exact", source="cpu") -> dict:
    p = cp.Profiler(source, mode)
    with no_gc():
        cp.runcall(p, fn)
    assert p.error is None
    return {k: (f.primitive_calls, f.calls) for k, f in cp.by_function(p).items()}


def paths(p) -> dict:
    """(key, key, ...) from the top -> (calls, primitive_calls) for every call path."""
    rows = cp.nodes(p)
    keys: list[tuple] = []
    out = {}
    for n in rows:
        path = (n.key,) if n.parent < 0 else keys[n.parent] + (n.key,)
        keys.append(path)
        out[path] = (n.calls, n.primitive_calls)
    return out


# Fast mode's hooks on this interpreter: the PEP 523 eval-frame function on
# 3.11-3.13, sys.monitoring on 3.12+ (the default there: README, "Profiling").
# The tests of fast mode's paths and counts run on each.
FAST_HOOKS = ["eval_frame"] + (["monitoring"] if sys.version_info >= (3, 12) else [])
DEFAULT_FAST_HOOK = _native._default_fast_hook()


@pytest.fixture(params=FAST_HOOKS)
def fast_hook(request):
    """Fast-mode Profilers made in the test use this hook."""
    default = _native._default_fast_hook()
    _native._set_default_fast_hook(request.param)
    try:
        yield request.param
    finally:
        _native._set_default_fast_hook(default)


def hook_state(hook: str) -> str:
    """"cpuledger" while our hook is installed, else what runs instead."""
    if hook == "monitoring":
        return "cpuledger" if _native._monitoring_tool_id() >= 0 else "default"
    return _native._eval_frame_state()


def diff(a: dict, b: dict) -> list:
    return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b), key=str) if a.get(k) != b.get(k)]


# --- exact mode: counts equal cProfile's ----------------------------------------


@pytest.mark.parametrize("program", programs.ALL, ids=lambda f: f.__name__)
def test_exact_counts_equal_cprofile(program):
    expected = cprofile_counts(program)
    got = our_counts(program)
    assert not diff(expected, got), diff(expected, got)


def test_builtins_named_like_cprofile():
    names = {k[2] for k in our_counts(programs.run_builtins) if k[0] == "~"}
    assert "<built-in method builtins.len>" in names
    assert "<built-in method builtins.sorted>" in names
    assert "<method 'append' of 'list' objects>" in names
    assert "<method 'join' of 'str' objects>" in names
    assert all(k[1] == 0 for k in our_counts(programs.run_builtins) if k[0] == "~")


def test_stats_rows_are_consistent():
    p = cp.Profiler("cpu")
    cp.runcall(p, programs.run_decorators)
    rows = cp.nodes(p)
    assert rows and all(-1 <= r.parent < i for i, r in enumerate(rows))
    for i, r in enumerate(rows):
        children = [c for c in rows if c.parent == i]
        assert r.self_cost <= r.total_cost
        # self = total - callees (calibration only ever lowers both, never below zero)
        assert r.self_cost + sum(c.total_cost for c in children) <= r.total_cost + len(children) + 1
    assert p.mode == "exact" and not p.builtins_folded
    assert p.unit == "cpu_ns" and p.source in ("task_clock", "thread_cputime", "hardware")


# --- attribution -------------------------------------------------------------------


def _burn(n):
    s = 0
    for i in range(n):
        s += i * i
    return s


def timed(f):
    import functools

    @functools.wraps(f)
    def wrapper(*args):
        return f(*args)

    return wrapper


@timed
def cheap():
    return 1


@timed
def expensive():
    return _burn(50_000)


def attribution_program():
    for _ in range(10):
        cheap()
        expensive()


def by_path_names(rows) -> dict:
    """Each row under its call path's function names, outermost first."""
    by_path = {}
    keys: list[tuple] = []
    for n in rows:
        path = (n.key,) if n.parent < 0 else keys[n.parent] + (n.key,)
        keys.append(path)
        by_path[tuple(k[2] for k in path)] = n
    return by_path


def test_wrapper_attribution_keeps_paths_apart():
    p = cp.Profiler("cpu")
    cp.runcall(p, attribution_program)
    by_path = by_path_names(cp.nodes(p))
    exp = by_path[("attribution_program", "wrapper", "expensive")]
    chp = by_path[("attribution_program", "wrapper", "cheap")]
    assert exp.calls == chp.calls == 10
    assert by_path[("attribution_program", "wrapper")].calls == 20
    assert exp.total_cost > 20 * max(chp.total_cost, 1), (exp, chp)
    assert by_path[("attribution_program", "wrapper", "expensive", "_burn")].total_cost <= exp.total_cost


# --- recursion ----------------------------------------------------------------------


def test_recursion_not_double_counted():
    p = cp.Profiler("cpu")
    t0 = time.thread_time_ns()
    cp.runcall(p, programs.fib, 18)
    spent = time.thread_time_ns() - t0
    rows = cp.nodes(p)
    top = [r for r in rows if r.parent < 0]
    assert [r.name for r in top] == ["fib"]
    fib = cp.by_function(p)[top[0].key]
    assert fib.calls == 8361 and fib.primitive_calls == 1
    assert fib.total_cost == top[0].total_cost  # the outermost activation, once
    assert sum(r.self_cost for r in rows) <= top[0].total_cost + len(rows)
    # Double counting would make this ~depth (18) times the run's own cost.
    assert top[0].total_cost <= 1.2 * spent, (top[0].total_cost, spent)


# --- fast mode ----------------------------------------------------------------------


@pytest.mark.parametrize("program", programs.PURE_PYTHON, ids=lambda f: f.__name__)
def test_fast_mode_paths_equal_exact(program, fast_hook):
    if fast_hook == "eval_frame" and EVAL_FRAME_MISSES_INIT and program is programs.run_classes_pure:
        pytest.skip("3.13 enters Plain.__init__ without the eval-frame hook (test_fast_mode_sees_frames_...)")
    exact = cp.Profiler("cpu", "exact")
    cp.runcall(exact, program)
    fast = cp.Profiler("cpu", "fast")
    cp.runcall(fast, program)
    assert fast.mode == "fast" and fast.builtins_folded and fast.fast_hook == fast_hook
    assert not diff(paths(exact), paths(fast)), diff(paths(exact), paths(fast))


@pytest.mark.parametrize("program", programs.ALL, ids=lambda f: f.__name__)
def test_fast_mode_counts_equal_cprofile_for_python_functions(program, fast_hook):
    expected = {k: v for k, v in cprofile_counts(program).items() if k[0] != "~"}
    got = our_counts(program, "fast")
    assert not diff(expected, got), diff(expected, got)


class Box:
    def __init__(self, v):
        self.v = v

    @property
    def double(self):
        return self.v * 2

    def __getitem__(self, i):
        return self.v + i

    def add(self, k=1):
        return self.v + k


def _pair(n):
    yield from range(n)


def inlined_calls():
    """Calls the specializing interpreter runs without a C call once warm:
    class instantiation with a Python __init__, a property, __getitem__, a
    method with defaults, generators resumed by bytecode."""
    t = 0
    for k in range(50):
        b = Box(k)
        t += b.double + b[1] + b.add()
        for x in _pair(2):
            t += x
    return t


# 3.13 pushes a plain class's __init__ frame (CALL_ALLOC_AND_ENTER_INIT)
# without calling a PEP 523 function: the reason fast mode uses
# sys.monitoring there.
EVAL_FRAME_MISSES_INIT = sys.version_info >= (3, 13)


def test_fast_mode_sees_frames_the_interpreter_inlines(fast_hook):
    inlined_calls()
    inlined_calls()  # warm: the call sites are specialized
    expected = {k: v for k, v in cprofile_counts(inlined_calls).items() if k[0] != "~"}
    got = our_counts(inlined_calls, "fast")
    init = key(Box.__init__)
    if fast_hook == "eval_frame" and EVAL_FRAME_MISSES_INIT:
        assert got.get(init, (0, 0))[1] < expected[init][1] == 50
        expected.pop(init)
        got.pop(init, None)
    assert not diff(expected, got), diff(expected, got)
    assert expected[key(Box.add)] == (50, 50)


def test_fast_mode_hook_per_version():
    assert DEFAULT_FAST_HOOK == ("eval_frame" if sys.version_info < (3, 13) else "monitoring")
    assert cp.Profiler("wall", "fast").fast_hook == DEFAULT_FAST_HOOK
    assert cp.Profiler("wall", "exact").fast_hook is None


def test_fast_mode_installs_and_uninstalls(fast_hook):
    assert hook_state(fast_hook) == "default"
    a, b = cp.Profiler("cpu", "fast"), cp.Profiler("cpu", "fast")
    a.enable()
    assert hook_state(fast_hook) == "cpuledger"
    with pytest.raises(RuntimeError, match="another cpuledger Profiler"):
        b.enable()
    a.disable()
    assert hook_state(fast_hook) == "default"
    # Two threads, two profilers: installed once, removed by the last.
    done = threading.Event()
    go = threading.Event()

    def other():
        b.enable()
        go.set()
        done.wait(10)
        programs.fib(5)
        b.disable()

    t = threading.Thread(target=other)
    t.start()
    go.wait(10)
    a.enable()
    done.set()
    t.join()
    assert hook_state(fast_hook) == "cpuledger"
    a.disable()
    assert hook_state(fast_hook) == "default"
    assert cp.by_function(b)[FIB].calls == 15


def fast_profiler_on(hook: str):
    """A fast-mode CPU profiler on `hook` ("eval_frame", "monitoring")."""
    _native._set_default_fast_hook(hook)
    try:
        return cp.Profiler("cpu", "fast")
    finally:
        _native._set_default_fast_hook(DEFAULT_FAST_HOOK)


def test_monitoring_leaves_a_tool_id_taken_by_another_tool():
    if "monitoring" not in FAST_HOOKS:
        pytest.skip("sys.monitoring needs CPython 3.12")
    pr = cProfile.Profile()  # holds sys.monitoring's PROFILER_ID while enabled
    pr.enable()
    try:
        p = fast_profiler_on("monitoring")
        cp.runcall(p, programs.fib, 10)
        assert sys.monitoring.get_tool(sys.monitoring.PROFILER_ID) != "cpuledger"
    finally:
        pr.disable()
    assert cp.by_function(p)[FIB].calls == 177
    assert _native._monitoring_tool_id() == -1


def test_fast_mode_chains_to_a_previous_eval_frame_function():
    assert _native._set_passthrough_eval_frame(True)
    try:
        assert _native._eval_frame_state() == "other"
        before = _native._passthrough_frames()
        p = fast_profiler_on("eval_frame")
        cp.runcall(p, programs.fib, 10)
        assert _native._eval_frame_state() == "other"  # restored
        assert _native._passthrough_frames() - before >= 177  # every fib frame went through it
        assert cp.by_function(p)[cp.nodes(p)[0].key].calls == 177
    finally:
        assert _native._set_passthrough_eval_frame(False)
    assert _native._eval_frame_state() == "default"


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_other_threads_not_profiled(mode):
    def thread_only_work():
        return programs.fib(8)

    p = cp.Profiler("cpu", mode)

    def main_work():
        t = threading.Thread(target=thread_only_work)
        t.start()
        t.join()
        return programs.fib(3)

    cp.runcall(p, main_work)
    names = {k[2] for k in cp.by_function(p)}
    assert "thread_only_work" not in names
    assert cp.by_function(p)[FIB].calls == 5


def test_disable_on_another_thread_is_refused():
    p = cp.Profiler("cpu")
    p.enable()
    errors = []

    def other():
        try:
            p.disable()
        except RuntimeError as e:
            errors.append(e)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    p.disable()
    assert errors and "thread that enabled" in str(errors[0])


# --- calibration ---------------------------------------------------------------------
# How close a calibrated profile's sum comes to the unprofiled run is a timing
# figure: bench/profiler/overhead_bench.py measures it. Tests hold only what
# does not depend on the machine's load: calibration never drives a cost
# below zero, and the work is all still there.


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_calibrated_costs_are_never_negative(mode):
    p = cp.Profiler("cpu", mode)
    cp.runcall(p, programs.medium)  # 3000 calls doing ~0.5 us each, plus 3000 list.append
    nodes = list(cp.nodes(p))
    assert nodes and all(r.self_cost >= 0 for r in nodes)
    assert sum(r.self_cost for r in nodes) > 0


def _trivial_gen(n):
    for _ in range(n):
        yield


def drain_trivial_resumes():
    return sum(1 for _ in _trivial_gen(20_000))


@pytest.mark.parametrize("mode", ["exact", "fast"])
@pytest.mark.parametrize("source", ["cpu", "wall"])
def test_cheap_resumes_keep_totals_consistent(mode, source):
    # Thousands of resumes far cheaper than one clock read: the calibrated
    # overhead per call is larger than many single calls' cost. Costs are
    # summed signed per node and clamped once, so every node's total is its
    # self plus its callees' totals, and nothing is negative.
    p = cp.Profiler(source, mode)
    assert cp.runcall(p, drain_trivial_resumes) == 20_000
    rows = cp.nodes(p)
    for i, r in enumerate(rows):
        children = [c for c in rows if c.parent == i]
        assert r.self_cost >= 0
        assert r.total_cost == r.self_cost + sum(c.total_cost for c in children), (r, children)
    cal = p.calibration
    assert set(cal) == {"call", "resume"}
    assert all(in_callee <= per_call for per_call, in_callee in cal.values())
    if mode == "exact":  # one figure for every event
        assert cal["call"] == cal["resume"]


def test_noop_profile_hook_for_the_bench():
    _native._set_noop_profile(True)
    try:
        assert sys.getprofile() is None  # a C function: not visible as a Python one
        programs.fib(5)
    finally:
        _native._set_noop_profile(False)
    p = cp.Profiler("cpu")
    p.enable()
    try:
        with pytest.raises(RuntimeError, match="enabled"):
            _native._set_noop_profile(True)
    finally:
        p.disable()


# --- failures and exceptions -------------------------------------------------------------


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_hook_failure_never_raises_into_the_program(mode):
    p = cp.Profiler("cpu", mode, max_nodes=3)
    expected = programs.run_methods()
    p.enable()
    got = programs.run_methods()
    with pytest.warns(RuntimeWarning, match="node limit"):
        p.disable()
    assert got == expected
    assert "node limit" in p.error
    assert len(cp.nodes(p)) == 2  # what fitted is kept


class Closing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        len("first builtin seen while unwinding")
        return False


def raise_through(depth):
    if depth == 0:
        try:
            raise ValueError("lost?")
        finally:
            sorted([3, 2, 1])  # a builtin first seen with an exception in flight
    with Closing():
        return raise_through(depth - 1)


def gen_raises():
    yield 1
    raise_through(3)


def raising_program():
    try:
        {}["missing"]
    except KeyError as e:
        context = e
    try:
        for _ in gen_raises():
            pass
    except ValueError as e:
        raise RuntimeError("wrapped") from e
    return context


def _outcome(fn):
    try:
        fn()
    except BaseException as e:  # noqa: BLE001
        return (
            type(e),
            str(e),
            type(e.__cause__),
            str(e.__cause__),
            [f.name for f in traceback.extract_tb(e.__cause__.__traceback__)],
        )
    return None


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_exception_in_flight_is_preserved(mode):
    expected = _outcome(raising_program)
    assert expected is not None and expected[0] is RuntimeError
    p = cp.Profiler("cpu", mode)
    got = _outcome(lambda: cp.runcall(p, raising_program))
    assert got == expected
    assert p.error is None
    counts = {k[2]: (f.primitive_calls, f.calls) for k, f in cp.by_function(p).items()}
    assert counts["raise_through"] == (1, 4)


def test_exception_counts_match_cprofile():
    def run():
        try:
            raising_program()
        except RuntimeError:
            pass

    assert not diff(cprofile_counts(run), our_counts(run))


def test_bad_arguments():
    with pytest.raises(ValueError, match="source"):
        cp.Profiler("bogus")
    with pytest.raises(ValueError, match="mode"):
        cp.Profiler("cpu", "bogus")
    with pytest.raises(ValueError, match="PMU"):
        if _native.Counters().source == "hardware":
            raise ValueError("PMU present: nothing to check")
        cp.Profiler("instructions")


def test_auto_source_reads_per_call_only_where_that_is_cheap():
    """auto: instructions read at every call with a PMU (rdpmc), else apportioned:
    without one a CPU-time read is a system call dearer than the calls it times."""
    p = cp.Profiler("auto")
    cp.runcall(p, programs.run_fib)
    if _native.Counters().source == "hardware":
        assert p.source == "hardware" and p.unit == "instructions"
    else:
        assert p.source.startswith("apportioned/") and p.unit == "cpu_ns"
        assert p.own_cost > 0 and sum(n.self_cost for n in cp.nodes(p)) == p.own_cost


def test_wall_source_and_clear():
    p = cp.Profiler("wall")
    assert p.source in ("tsc", "monotonic_raw") and p.unit == "tsc"
    cp.runcall(p, programs.run_fib)
    assert cp.nodes(p)[0].total_cost > 0
    p.clear()
    assert p.stats() == []


# --- code hashes: the same code, the same hash, at any line and in any process ------------

HASHED_SOURCE = '''
def handler(x):
    total = 0
    for ch in str(x):
        if ch in {"a", "b", "c", "d", "e", "f", "g", "h"}:
            total += ord(ch)
    return total + 1, (1.5, b"raw", None, 2**70), lambda y: y * 2
'''


def compiled(source: str, blank_lines: int = 0, name: str = "handler"):
    """`name` from `source` compiled `blank_lines` lines further down its file."""
    ns: dict = {}
    exec(compile("\n" * blank_lines + source, "app/views.py", "exec"), ns)
    return ns[name]


def profiled_functions(record_pb2, fn, *args, mode: str = "exact") -> list:
    """The record.ProfileFunction entries of one profiled call, as encoded."""
    p = cp.Profiler("cpu", mode)
    cp.runcall(p, fn, *args)
    prof = record_pb2.Profile()
    prof.ParseFromString(p.tree_bytes())
    return list(prof.functions)


def code_hash(record_pb2, fn, *args, mode: str = "exact") -> int:
    code = fn.__code__
    [f] = [f for f in profiled_functions(record_pb2, fn, *args, mode=mode)
           if (f.name, f.line) == (code.co_name, code.co_firstlineno)]
    return f.code_hash


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_code_hash_is_the_same_at_another_line(record_pb2, mode):
    # The function moved down its file: the line differs, the hash does not,
    # even when one copy ran long enough to be specialized (3.11+ quickening).
    here, moved = compiled(HASHED_SOURCE), compiled(HASHED_SOURCE, blank_lines=40)
    for _ in range(2000):
        here("abc-xyz")
    assert moved.__code__.co_firstlineno == here.__code__.co_firstlineno + 40
    h = code_hash(record_pb2, here, "abc", mode=mode)
    assert h != 0
    assert code_hash(record_pb2, moved, "abc", mode=mode) == h


def test_code_hash_changes_with_the_code(record_pb2):
    base = code_hash(record_pb2, compiled(HASHED_SOURCE), "a")
    edits = {
        "a constant": HASHED_SOURCE.replace("total + 1", "total + 2"),
        "a set member": HASHED_SOURCE.replace('"h"}', '"z"}'),
        "a nested function": HASHED_SOURCE.replace("y * 2", "y * 3"),
        "a local's name": HASHED_SOURCE.replace("ch", "c"),
        "a loop": HASHED_SOURCE.replace(
            "    return", "    while total < 0:\n        total -= 1\n    return"),
        "a float": HASHED_SOURCE.replace("1.5", "-1.5"),
        "a big int": HASHED_SOURCE.replace("2**70", "2**71"),
    }
    hashes = {what: code_hash(record_pb2, compiled(src), "a") for what, src in edits.items()}
    assert all(h not in (0, base) for h in hashes.values()), hashes
    assert len(set(hashes.values())) == len(edits), hashes


def test_builtins_have_no_code_hash(record_pb2):
    functions = profiled_functions(record_pb2, compiled(HASHED_SOURCE), "abc")
    builtins = [f for f in functions if f.file == "~"]
    assert {f.name for f in builtins} >= {"<built-in method builtins.ord>"}
    assert all(f.code_hash == 0 for f in builtins)
    assert all(f.code_hash != 0 for f in functions if f.file != "~")


HASH_IN_SUBPROCESS = f'''
import sys
sys.path.insert(0, {str(HERE)!r})
from test_profiler import HASHED_SOURCE, compiled
from cpuledger import profile as cp
fn = compiled(HASHED_SOURCE)
p = cp.Profiler("cpu", "exact")
cp.runcall(p, fn, "abc")
print(p.tree_bytes().hex())
print(list(next(c for c in fn.__code__.co_consts if isinstance(c, frozenset))))
'''


def test_code_hash_is_the_same_under_another_hash_seed(record_pb2):
    # String hashes, so a frozenset constant's iteration order, follow
    # PYTHONHASHSEED: a host started with another seed hashes the code alike.
    seen = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        r = subprocess.run([sys.executable, "-c", HASH_IN_SUBPROCESS], env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=120, check=False)
        assert r.returncode == 0, r.stderr
        encoded, order = r.stdout.splitlines()
        prof = record_pb2.Profile()
        prof.ParseFromString(bytes.fromhex(encoded))
        [f] = [f for f in prof.functions if f.name == "handler"]
        seen.append((f.code_hash, order))
    assert seen[0][1] != seen[1][1]  # the set's order did differ
    assert seen[0][0] == seen[1][0] == code_hash(record_pb2, compiled(HASHED_SOURCE), "abc") != 0


# --- the CLI ---------------------------------------------------------------------------------

SCRIPT = HERE / "profiled" / "script.py"


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "cpuledger.profile", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_prints_a_table():
    r = run_cli("-s", "cpu", str(SCRIPT), "10", "x")
    assert r.returncode == 0, r.stderr
    assert "argv: ['10', 'x']" in r.stdout
    assert "function calls" in r.stdout and "Ordered by: total cost" in r.stdout
    assert "script.py:" in r.stdout and "(fib)" in r.stdout
    assert "<built-in method builtins.sorted>" in r.stdout


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_cli_writes_pstats(tmp_path, mode):
    out = tmp_path / "out.pstats"
    r = run_cli("-s", "cpu", "-m", mode, "-o", str(out), str(SCRIPT), "8")
    assert r.returncode == 0, r.stderr
    st = pstats.Stats(str(out), stream=io.StringIO())
    st.sort_stats("cumulative").print_stats()
    assert "fib" in st.stream.getvalue()
    fib = [v for k, v in st.stats.items() if k[2] == "fib"]
    assert fib and fib[0][1] == sum(
        programs_fib_calls(k) for k in range(8)
    )  # total calls of fib over work(8)
    raw = marshal.loads(out.read_bytes())
    assert all(len(v) == 5 for v in raw.values())


def programs_fib_calls(n):
    return 1 if n < 2 else 1 + programs_fib_calls(n - 1) + programs_fib_calls(n - 2)


def test_cli_writes_collapsed_and_speedscope(tmp_path):
    folded = tmp_path / "out.collapsed"
    r = run_cli("-s", "cpu", "-o", str(folded), str(SCRIPT), "6")
    assert r.returncode == 0, r.stderr
    lines = folded.read_text().splitlines()
    assert lines and all(line.rsplit(" ", 1)[1].isdigit() for line in lines)
    assert any(";work (" in line and ";fib (" in line and "script.py:" in line for line in lines)

    ss = tmp_path / "out.json"
    r = run_cli("-s", "cpu", "-f", "speedscope", "-o", str(ss), str(SCRIPT), "6")
    assert r.returncode == 0, r.stderr
    doc = json.loads(ss.read_text())
    prof = doc["profiles"][0]
    assert prof["type"] == "sampled" and len(prof["samples"]) == len(prof["weights"])
    assert {f["name"] for f in doc["shared"]["frames"]} >= {"main", "work", "fib"}
    # And it is a valid speedscope file by speedscope's own schema (npm package,
    # installed by scripts/bootstrap into node_modules/).
    import jsonschema

    schema = json.loads((ROOT / "node_modules/speedscope/dist/release/file-format-schema.json").read_text())
    jsonschema.Draft7Validator(schema).validate(doc)
    # The validator is not vacuous: a frame index that is not a number fails.
    bad = json.loads(json.dumps(doc))
    bad["profiles"][0]["samples"][0] = ["zero"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(schema).validate(bad)


def test_cli_writes_pprof(tmp_path):
    out = tmp_path / "p.pb"
    r = run_cli("-s", "cpu", "-f", "pprof", "-o", str(out), str(SCRIPT), "4")
    assert r.returncode == 0, r.stderr
    data = out.read_bytes()
    assert data and b"fib" in data and b"script.py" in data


def test_tree_bytes_is_a_record_profile(record_pb2):
    p = cp.Profiler("cpu")
    cp.runcall(p, programs.run_decorators)
    prof = record_pb2.Profile()
    prof.ParseFromString(p.tree_bytes())
    assert prof.unit == "cpu_ns" and prof.mode == "exact" and prof.requests == 1
    assert prof.overhead_per_event == p.overhead_per_event
    rows = cp.nodes(p)
    assert len(prof.nodes) == len(rows) + 1  # + the root
    for row, node in zip(rows, prof.nodes[1:]):
        f = prof.functions[node.function]
        assert (f.file, f.line, f.name) == row.key
        assert node.parent == row.parent + 1
        assert (node.calls, node.primitive_calls, node.self_cost, node.total_cost) == row[4:]


# --- pausing: one profile over the steps of a coroutine ----------------------------
# cpuledger.asgi profiles a request on a shared event loop by pausing its
# profile between the steps of its coroutine. These drive coroutines by hand,
# as the event loop would, with other work (another coroutine's steps, "the
# loop") in between.


@types.coroutine
def _suspend():
    """An await that suspends the whole coroutine chain once (a Future's)."""
    yield "suspended"


def step_helper(n):
    return len(sorted(range(n)))


async def step_leaf(n):
    await _suspend()
    return step_helper(n)


async def step_view(n):
    a = step_helper(n)
    await _suspend()
    b = await step_leaf(n)
    return a + b


def other_helper(n):
    return sum(range(n))


async def other_view(n):
    a = other_helper(n)
    await _suspend()
    return a + other_helper(n)


def between_steps():
    """What runs on the thread between a request's steps (the loop, others)."""
    return sum(sorted(range(500)))


def drive(coros: dict, step) -> dict:
    """Step every coroutine once in turn until all are done; step(name, fn, arg)
    makes one step. Returns each one's result."""
    pending = {name: None for name in coros}
    results = {}
    while pending:
        for name in list(pending):
            try:
                pending[name] = step(name, coros[name].send, pending[name])
            except StopIteration as stop:
                results[name] = stop.value
                del pending[name]
            between_steps()
    return results


def stepped(mode, source="cpu", n=50):
    """step_view and other_view interleaved, each with its own paused profile."""
    profilers = {"view": cp.Profiler(source, mode), "other": cp.Profiler(source, mode)}
    for p in profilers.values():
        p.enable()
        p.pause()
    with no_gc():
        results = drive({"view": step_view(n), "other": other_view(n)},
                        lambda name, fn, arg: profilers[name].step(fn, arg))
    for p in profilers.values():
        assert p.paused
        p.disable()
        assert p.error is None
    assert results == {"view": 2 * n, "other": 2 * sum(range(n))}
    return profilers


def key(fn):
    code = fn.__code__
    return (code.co_filename, code.co_firstlineno, code.co_name)


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_interleaved_steps_keep_each_profile_to_its_own_frames(mode):
    profilers = stepped(mode)
    got = paths(profilers["view"])
    python_paths = {p for p in got if all(k[0] != "~" for k in p)}
    # The coroutine is a top-level call and its callees sit under it, as
    # under a plain call: the same paths, step after step.
    view, leaf, helper, suspend = key(step_view), key(step_leaf), key(step_helper), key(_suspend)
    assert python_paths == {(view,), (view, helper), (view, suspend), (view, leaf), (view, leaf, suspend),
                            (view, leaf, helper)}
    # Three steps of step_view; step_leaf is entered by two of them (its start and its resume).
    assert got[(view,)][0] == 3 and got[(view, leaf)][0] == 2 and got[(view, leaf, helper)][0] == 1
    other = {k[2] for p in paths(profilers["other"]) for k in p}
    assert {"other_view", "other_helper"} <= other
    assert not other & {"step_view", "step_leaf", "step_helper", "between_steps"}
    assert "between_steps" not in {k[2] for p in got for k in p}
    if mode == "exact":  # the driver's send is not a call of the profile; the view's builtins are
        assert (view, helper, ("~", 0, "<built-in method builtins.sorted>")) in got
        assert not any("send" in k[2] for p in got for k in p)


def test_stepped_counts_equal_cprofile():
    """cProfile on 3.11 counts every resume of a coroutine as a call: so do
    we. cProfile, enabled around each send, sees the send itself as well."""
    pr = cProfile.Profile()

    def step_under_cprofile(fn, arg):
        pr.enable()
        try:
            return fn(arg)
        finally:
            pr.disable()

    with no_gc():
        drive({"view": step_view(50)}, lambda name, fn, arg: step_under_cprofile(fn, arg))
    pr.create_stats()
    driver = {CPROFILE_DISABLE, ("~", 0, "<method 'send' of 'coroutine' objects>")}
    expected = {k: (v[0], v[1]) for k, v in pr.stats.items() if k not in driver}
    p = cp.Profiler("cpu", "exact")
    p.enable()
    p.pause()
    with no_gc():
        drive({"view": step_view(50)}, lambda name, fn, arg: p.step(fn, arg))
    p.disable()
    got = {k: (f.primitive_calls, f.calls) for k, f in cp.by_function(p).items()}
    assert not diff(expected, got), diff(expected, got)


def test_fast_and_exact_steps_give_the_same_python_paths(fast_hook):
    exact, fast = stepped("exact")["view"], stepped("fast")["view"]
    python = {p: v for p, v in paths(exact).items() if all(k[0] != "~" for k in p)}
    assert not diff(python, paths(fast)), diff(python, paths(fast))


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_a_call_open_across_a_pause_stays_open(mode):
    p = cp.Profiler("cpu", mode)

    def outer():
        p.pause()
        between_steps()  # not seen
        p.resume()
        return step_helper(10)

    p.enable()
    outer()
    p.disable()
    got = paths(p)
    o = key(outer)
    assert got[(o,)] == (1, 1) and got[(o, key(step_helper))] == (1, 1)
    assert "between_steps" not in {k[2] for path in got for k in path}


@pytest.mark.parametrize("source", ["cpu", "apportioned"])
def test_paused_time_is_in_no_node(source):
    """A profile that was paused all along around heavy work holds none of it."""
    p = cp.Profiler(source, "exact")
    p.enable()
    p.pause()
    for _ in range(20):
        between_steps()
    p.step(step_helper, 10)
    p.disable()
    rows = cp.nodes(p)
    assert [r.key[2] for r in rows if r.parent < 0] == ["step_helper"]
    assert "between_steps" not in {r.key[2] for r in rows}


def test_step_raises_what_fn_raises_and_keeps_the_pause():
    p = cp.Profiler("cpu", "exact")
    p.enable()
    p.pause()

    def fails(x):
        raise ValueError(x)

    with pytest.raises(ValueError, match="boom"):
        p.step(fails, "boom")
    assert p.paused
    assert p.step(step_helper, 3) == 3
    p.disable()
    assert {k[2] for k in cp.by_function(p)} >= {"fails", "step_helper"}


def test_step_that_cannot_attach_runs_unprofiled():
    paused = cp.Profiler("cpu", "exact")
    paused.enable()
    paused.pause()
    running = cp.Profiler("cpu", "exact")
    running.enable()  # allowed: the other one is paused
    with pytest.raises(RuntimeError, match="another cpuledger Profiler"):
        paused.resume()
    assert paused.step(step_helper, 4) == 4  # ran, unprofiled
    running.disable()
    with pytest.warns(RuntimeWarning, match="a step ran unprofiled"):
        paused.disable()
    assert "step_helper" in {k[2] for k in cp.by_function(running)}
    assert "step_helper" not in {k[2] for k in cp.by_function(paused)}
    assert paused.step(step_helper, 5) == 5  # not enabled: just the call


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_pause_leaves_the_thread_free(mode):
    hook = DEFAULT_FAST_HOOK
    p = cp.Profiler("cpu", mode)
    p.enable()
    p.pause()
    assert p.enabled and p.paused
    p.pause()  # a no-op
    p.enable()  # of a paused profile: resume
    assert not p.paused
    p.disable()
    if mode == "fast":
        assert hook_state(hook) == "default"  # installed once, removed once
    assert sys.getprofile() is None


def test_a_db_span_open_across_a_pause_excludes_only_its_own_cpu():
    """A request awaiting its db call between two steps: the span's reading
    runs start to end on the thread, so it holds whatever ran there while
    the profile was paused; only what the span spent attached comes off the
    profile's figure."""
    p = cp.Profiler("apportioned", "exact")
    scope = _native.RequestScope()
    p.enable()
    p.pause()
    handle = p.step(lambda kind: scope.span_begin(kind), "db")
    paused_cpu = time.thread_time_ns()
    for _ in range(50):
        between_steps()  # other requests' work, on this thread, inside the span's stretch
    paused_cpu = time.thread_time_ns() - paused_cpu
    p.step(lambda h: scope.span_end("db", h), handle)
    p.disable()
    assert p.unit == "cpu_ns" or p.unit == "instructions"
    if p.unit == "cpu_ns":
        assert p.excluded_cost < paused_cpu  # was >= paused_cpu before the pauses came off
