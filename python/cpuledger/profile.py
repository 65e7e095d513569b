"""cProfile with a CPU counter for a timer, and full call paths.

    python -m cpuledger.profile [-s SOURCE] [-m MODE] [-o OUT] [-f FORMAT] script.py [args...]

runs script.py as ``__main__`` (sys.argv set as the script sees it) under the
native profiler (``cpuledger._native.Profiler``) and prints a pstats-like
table sorted by total cost, or writes OUT in FORMAT. SOURCE is what the
costs count: ``instructions`` (hardware PMU), ``cycles``, ``cpu`` (thread CPU
ns), ``wall`` (TSC ticks), each read at every call, ``apportioned`` (the
run's CPU, instructions or CPU ns, from two counter reads, shared over
TSC-timed calls) or ``auto`` (the default: instructions read at every call
where a PMU is there, else apportioned, since reading CPU time without a PMU
is a system call that costs more than many calls it would time). MODE is
``exact`` (the default: cProfile-equal call counts, C builtins included) or
``fast`` (Python frames only, builtins folded into their callers; the PEP 523
eval-frame hook on CPython 3.11-3.13, sys.monitoring after).

The small Python API:

    from cpuledger.profile import Profiler, by_function, nodes, write
    p = Profiler(source="cpu")
    result = runcall(p, handler, request)
    for fn in sorted(by_function(p).values(), key=lambda f: -f.total_cost): ...
    write(p, "out.pstats", "pstats")
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable, Literal, NamedTuple, TypeVar

from cpuledger._config import PROFILE_MODES, PROFILE_SOURCES, ProfileModeName, ProfileSourceName
from cpuledger._native import Profiler

__all__ = [
    "Profiler",
    "Node",
    "FunctionStats",
    "SourceName",
    "ModeName",
    "FormatName",
    "FORMATS",
    "nodes",
    "by_function",
    "runcall",
    "write",
    "main",
]

SourceName = ProfileSourceName  # defined once, in _config (the settings share them)
ModeName = ProfileModeName
FormatName = Literal["pstats", "pprof", "speedscope", "collapsed"]
FORMATS: tuple[str, ...] = ("pstats", "pprof", "speedscope", "collapsed")

_T = TypeVar("_T")

FunctionKey = tuple[str, int, str]  # (file, line, name), as pstats labels a function


class Node(NamedTuple):
    """One call path (``Profiler.stats()`` row); ``parent`` indexes the list, -1 at the top."""

    parent: int
    file: str
    line: int
    name: str
    calls: int
    primitive_calls: int
    self_cost: int
    total_cost: int

    @property
    def key(self) -> FunctionKey:
        return (self.file, self.line, self.name)


class FunctionStats(NamedTuple):
    """One function over every path it was called on (what pstats shows)."""

    file: str
    line: int
    name: str
    calls: int
    primitive_calls: int
    self_cost: int
    total_cost: int  # counted once per outermost (primitive) activation


def nodes(profiler: Profiler) -> list[Node]:
    """The profile's call paths as ``Node`` tuples."""
    return [Node(*row) for row in profiler.stats()]


def by_function(source: Profiler | list[Node]) -> dict[FunctionKey, FunctionStats]:
    """Per-function totals keyed by (file, line, name)."""
    rows = nodes(source) if isinstance(source, Profiler) else source
    acc: dict[FunctionKey, list[int]] = {}
    for n in rows:
        a = acc.setdefault(n.key, [0, 0, 0, 0])
        a[0] += n.calls
        a[1] += n.primitive_calls
        a[2] += n.self_cost
        if n.primitive_calls:
            a[3] += n.total_cost
    return {k: FunctionStats(*k, *v) for k, v in acc.items()}


def runcall(profiler: Profiler, func: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """``func(*args, **kwargs)`` with ``profiler`` enabled around it (as cProfile.runcall)."""
    profiler.enable()
    try:
        return func(*args, **kwargs)
    finally:
        profiler.disable()


# --- writers -----------------------------------------------------------------


def write(profiler: Profiler, path: str, format: FormatName = "pstats", name: str = "") -> None:
    """Writes the profile to ``path`` in ``format`` with the native exporters
    (src/profile/export.h): pstats (``pstats.Stats(path)`` loads it; cpu_ns
    as seconds, other units as raw counts), pprof (profile.proto, not
    gzipped), speedscope (JSON), collapsed ("a;b;c self_cost" lines)."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
    profiler.write(path, format, name)


def _format_for(path: str) -> str:
    p = path.lower()
    if p.endswith((".pb.gz", ".pprof", ".pb")):
        return "pprof"
    if p.endswith(".json"):
        return "speedscope"
    if p.endswith((".collapsed", ".folded", ".txt")):
        return "collapsed"
    return "pstats"


def print_table(profiler: Profiler, file=None, limit: int | None = None) -> None:
    """A pstats-like table, sorted by total cost."""
    file = file or sys.stdout
    funcs = sorted(by_function(profiler).values(), key=lambda f: (-f.total_cost, -f.self_cost))
    total_calls = sum(f.calls for f in funcs)
    primitive = sum(f.primitive_calls for f in funcs)
    unit = profiler.unit
    print(
        f"         {total_calls} function calls ({primitive} primitive calls), "
        f"source {profiler.source}, unit {unit}, mode {profiler.mode}"
        + (", builtins folded" if profiler.builtins_folded else "")
        + f", overhead/call {profiler.overhead_per_event} {unit} (subtracted)",
        file=file,
    )
    print("\n   Ordered by: total cost\n", file=file)
    print(f"{'ncalls':>12} {'self':>14} {'percall':>10} {'total':>14} {'percall':>10}  filename:lineno(function)", file=file)
    for f in funcs[:limit]:
        ncalls = str(f.calls) if f.calls == f.primitive_calls else f"{f.calls}/{f.primitive_calls}"
        where = f.name if f.file == "~" else f"{f.file}:{f.line}({f.name})"
        per_self = f.self_cost // f.calls if f.calls else 0
        per_total = f.total_cost // f.primitive_calls if f.primitive_calls else 0
        print(f"{ncalls:>12} {f.self_cost:>14} {per_self:>10} {f.total_cost:>14} {per_total:>10}  {where}", file=file)
    print(file=file)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cpuledger.profile",
        description="Profile a script with a CPU counter for a timer (cProfile-compatible counts).",
    )
    parser.add_argument("-s", "--source", default="auto",
                        choices=PROFILE_SOURCES)
    parser.add_argument("-m", "--mode", default="exact", choices=PROFILE_MODES)
    parser.add_argument("-o", "--outfile", help="write the profile here instead of printing a table")
    parser.add_argument("-f", "--format", choices=FORMATS, help="output format (default: from -o's extension, else pstats)")
    parser.add_argument("script", help="the Python script to run as __main__")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="its arguments")
    opts = parser.parse_args(argv)

    try:
        profiler = Profiler(source=opts.source, mode=opts.mode)
    except ValueError as e:
        parser.error(str(e))
    if profiler.mode_fallback:
        print(f"cpuledger.profile: {profiler.mode_fallback}", file=sys.stderr)

    script = opts.script
    sys.argv[:] = [script, *opts.args]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    with open(script, "rb") as f:
        code = compile(f.read(), script, "exec")
    globs = {
        "__file__": script,
        "__name__": "__main__",
        "__package__": None,
        "__cached__": None,
        "__builtins__": __builtins__,
    }
    try:
        runcall(profiler, exec, code, globs)
    except SystemExit:
        pass
    finally:
        if opts.outfile:
            write(profiler, opts.outfile, opts.format or _format_for(opts.outfile))
        else:
            print_table(profiler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
