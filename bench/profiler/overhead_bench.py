"""Profiler overhead on CPU-bound pure-Python workloads, side by side in one
run: no profiler; cProfile; yappi (CPU clock); pyinstrument (sampling); and
cpuledger's exact and fast modes with the wall (TSC) and cpu sources.

For each workload and profiler: the slowdown (thread CPU time of the profiled
run / unprofiled, median of 5) and, where the profiler reports per-function
costs, the share of cost attributed to the workload's expensive function
(the truth is printed beside it, measured unprofiled).

Targets (issue 5), TSC source with full call paths: fast mode at most +10% on
call-heavy workloads; exact mode below cProfile.

Usage: python bench/profiler/overhead_bench.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import cProfile
import statistics
import string
import time

import cpuledger._native as native


# --- workloads: each returns nothing; `expensive` is the function to attribute ---
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def expensive_fib():
    fib(18)


def cheap_fib():
    fib(12)


def recursion():
    for _ in range(3):
        expensive_fib()
        cheap_fib()


class Vec:
    __slots__ = ("x", "y")

    def __init__(self, x, y):
        self.x, self.y = x, y

    def add(self, o):
        return Vec(self.x + o.x, self.y + o.y)

    def dot(self, o):
        return self.x * o.x + self.y * o.y


def expensive_methods():
    v = Vec(1, 2)
    for i in range(4000):
        v = v.add(Vec(i, 1))
        v.dot(v)


def methods():
    expensive_methods()
    v = Vec(0, 0)
    for i in range(1000):
        v.add(v)


def expensive_alloc():
    out = []
    for i in range(6000):
        out.append({"id": i, "tags": [str(i), str(i * 2)], "name": f"item-{i}"})
    return out


def allocation():
    expensive_alloc()
    [str(i) for i in range(2000)]


TEMPLATE = string.Template("<li class='$cls'>$name: $price</li>")


def expensive_render():
    return "".join(TEMPLATE.substitute(cls="row", name=f"product {i}", price=i * 3) for i in range(2500))


def render():
    expensive_render()
    "".join(f"<p>{i}</p>" for i in range(500))


# (name, workload, its expensive function, how many times the workload calls it)
WORKLOADS = [("recursion", recursion, "expensive_fib", 3), ("methods", methods, "expensive_methods", 1),
             ("allocation", allocation, "expensive_alloc", 1), ("template", render, "expensive_render", 1)]


def cpu_time(fn, wrap=None):
    t0 = time.thread_time_ns()
    if wrap is None:
        fn()
    else:
        wrap(fn)
    return time.thread_time_ns() - t0


def run_cprofile(fn):
    p = cProfile.Profile()
    p.runcall(fn)
    return p


def run_yappi(fn):
    import yappi

    yappi.set_clock_type("cpu")
    yappi.clear_stats()
    yappi.start()
    fn()
    yappi.stop()
    return yappi.get_func_stats()


def run_pyinstrument(fn):
    from pyinstrument import Profiler

    p = Profiler(interval=0.0005)
    p.start()
    fn()
    p.stop()
    return p


def ours(mode, source):
    def run(fn):
        p = native.Profiler(source=source, mode=mode)
        p.enable()
        fn()
        p.disable()
        return p
    return run


def share_ours(p, name):
    nodes = p.stats()
    total = sum(n[6] for n in nodes)  # self costs
    # total cost of the expensive function's outermost activations
    own = sum(n[7] for n in nodes if n[3] == name)
    return own / total if total else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    profilers = [("cProfile", run_cprofile), ("yappi (cpu)", run_yappi), ("pyinstrument", run_pyinstrument),
                 ("cpuledger exact/wall", ours("exact", "wall")), ("cpuledger fast/wall", ours("fast", "wall")),
                 ("cpuledger exact/cpu", ours("exact", "cpu")), ("cpuledger fast/cpu", ours("fast", "cpu"))]
    # Warm up calibration for our profilers (once per process, per mode and source).
    for _, run in profilers[3:]:
        run(lambda: None)
    print(f"{'workload':<11} {'profiler':<22} {'slowdown':>9} {'expensive share':>16}   target")
    for wname, fn, expensive, times_called in WORKLOADS:
        fn()
        base = statistics.median(cpu_time(fn) for _ in range(args.repeat))
        one = statistics.median(cpu_time(globals()[expensive]) for _ in range(args.repeat))
        truth = times_called * one / base
        print(f"{wname:<11} {'none':<22} {1.0:9.2f} {truth:15.1%}    (truth)")
        cprof = None
        for pname, run in profilers:
            times, last = [], None
            for _ in range(args.repeat):
                t0 = time.thread_time_ns()
                last = run(fn)
                times.append(time.thread_time_ns() - t0)
            slow = statistics.median(times) / base
            if pname == "cProfile":
                cprof = slow
            share = float("nan")
            if pname.startswith("cpuledger"):
                share = share_ours(last, expensive)
            elif pname == "pyinstrument":
                session = last.last_session
                root = session.root_frame() if session else None
                def find(frame):
                    if frame is None:
                        return 0.0
                    if frame.function == expensive:
                        return frame.time
                    return sum(find(c) for c in frame.children)
                share = find(root) / root.time if root and root.time else float("nan")
            elif pname == "yappi (cpu)":
                stats = list(last)
                tot = sum(s.tsub for s in stats)
                own = sum(s.ttot for s in stats if s.name == expensive)
                share = own / tot if tot else float("nan")
            elif pname == "cProfile":
                import pstats
                st = pstats.Stats(last).stats
                tot = sum(v[2] for v in st.values())
                own = sum(v[3] for k, v in st.items() if k[2] == expensive)
                share = own / tot if tot else float("nan")
            target = "-"
            if pname == "cpuledger fast/wall" and wname in ("recursion", "methods"):
                target = "<= 1.10x: " + ("met" if slow <= 1.10 else "MISSED")
            if pname == "cpuledger exact/wall" and cprof:
                target = "< cProfile: " + ("met" if slow < cprof else "MISSED")
            print(f"{'':<11} {pname:<22} {slow:9.2f} {share:15.1%}    {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
