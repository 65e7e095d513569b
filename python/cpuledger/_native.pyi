"""Type stub for cpuledger._native, the C++ core (see python/cpuledger/native/)."""

from typing import Any, Callable, Literal, Optional, TypedDict

# The spellings of src/counters/counters.h (kSources, exported as
# counter_sources()) and of the profiler; _config.py reads the same literals
# (CounterSourceName, ProfileSourceName, ProfileModeName) and tests hold the
# two files and the native table to one set.
CounterSourceName = Literal["auto", "hardware", "task_clock", "thread_cputime"]
ProfileSourceName = Literal["auto", "apportioned", "instructions", "cycles", "cpu", "wall"]
ProfileModeName = Literal["fast", "exact"]
FastHookName = Literal["eval_frame", "monitoring"]  # what feeds fast mode (Profiler.fast_hook)

class Reading(TypedDict):
    instructions: Optional[int]
    cycles: Optional[int]
    cpu_ns: int
    source: str
    kernel_included: bool
    multiplex_scale: float

class Counters:
    """CPU counters of the calling thread, from the best source available."""

    def __init__(self, source: CounterSourceName | Literal[""] = "") -> None: ...
    def read(self) -> Reading: ...
    def read_primary(self) -> int: ...
    @property
    def source(self) -> str: ...
    @property
    def method(self) -> str: ...
    @property
    def primary_unit(self) -> str: ...
    @property
    def fallbacks(self) -> list[str]: ...

class Profiler:
    """A cProfile whose timer is a CPU counter, with full call paths.

    source: "instructions" | "cycles" | "cpu" | "wall" (TSC), each read per
    frame; or "apportioned": frames timed by the TSC, costed at export with a
    CPU figure from the thread's real counter (own_cost, or the request's bill
    less its db and cache spans in Recorder.submit) shared in proportion to
    their ticks; or "auto": instructions where a PMU is there, else
    apportioned (a CPU-time read per frame would be a system call).
    mode: "exact" (PyEval_SetProfile, cProfile-equal counts, builtins included)
    | "fast" (Python frames only, builtins folded into their callers; fed by
    the PEP 523 eval-frame hook on 3.11-3.13, sys.monitoring later: fast_hook).
    Profiles the thread that calls enable(); one attached per thread at a
    time. pause() detaches a profile and keeps it open, so another can be
    enabled or resumed on the thread; resume() or step() attach it again
    (one request's steps on a shared event loop: cpuledger.asgi).
    """

    def __init__(
        self,
        source: ProfileSourceName = "auto",
        mode: ProfileModeName = "exact",
        calibrate: bool = True,
        max_nodes: int = 200000,
    ) -> None: ...
    def enable(self) -> None:
        """Start profiling the calling thread; of a paused profile: resume()."""
    def disable(self) -> None: ...
    def pause(self) -> None:
        """Detach, keeping the profile open: nothing is seen or costed until resume()."""
    def resume(self) -> None: ...
    def step(self, fn: Callable[[Any], Any], arg: Any) -> Any:
        """fn(arg) attached (resume, call, pause) when paused; returns or raises what fn does."""
    def clear(self) -> None: ...
    def reset(self) -> None:
        """Start a new profile: counts to zero, the call paths seen kept (warm)."""
    def stats(self) -> list[tuple[int, str, int, str, int, int, int, int]]:
        """(parent, file, line, name, calls, primitive_calls, self_cost, total_cost) per call path."""
    def tree_bytes(self) -> bytes: ...
    def write(self, path: str, format: str = "pstats", name: str = "") -> None: ...
    @property
    def enabled(self) -> bool: ...
    @property
    def paused(self) -> bool: ...
    @property
    def unit(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def mode(self) -> str: ...
    @property
    def fast_hook(self) -> Optional[FastHookName]:
        """What feeds a fast-mode profile; None in exact mode."""
    @property
    def mode_fallback(self) -> Optional[str]: ...
    @property
    def builtins_folded(self) -> bool: ...
    @property
    def overhead_per_event(self) -> int: ...
    @property
    def overhead_in_callee(self) -> int: ...
    @property
    def calibration(self) -> dict[str, tuple[int, int]]:
        """In the per-frame clock's ticks (TSC ticks for an apportioned profile)."""
    @property
    def apportioned(self) -> bool: ...
    @property
    def own_cost(self) -> int: ...
    @property
    def excluded_cost(self) -> int: ...
    @property
    def error(self) -> Optional[str]: ...

def _eval_frame_state() -> str: ...
def _monitoring_tool_id() -> int: ...
def _set_noop_monitoring(on: bool) -> bool: ...
def _default_fast_hook() -> FastHookName: ...
def _set_default_fast_hook(name: FastHookName) -> None: ...
def _set_passthrough_eval_frame(on: bool) -> bool: ...
def _passthrough_frames() -> int: ...
def _set_noop_profile(on: bool) -> None: ...

def counter_sources() -> list[tuple[str, int, str]]:
    """The one table of counter sources, in fallback order: (name, store code, unit)."""

def configure_counters(source: CounterSourceName) -> None:
    """Set the counter source threads open on first use ('auto', 'hardware', ...)."""

def thread_counter_source() -> str:
    """The source the calling thread's counters use."""

def hash_user(key: str, salt: str) -> str:
    """The stored form of an active-user key: XXH3-64 of the key, seeded by the salt, in hex."""

class RequestScope:
    """The CPU bill of one sampled request (begins on construction)."""

    def __init__(self) -> None: ...
    def resume(self) -> None: ...
    def suspend(self) -> None: ...
    def span_begin(self, kind: str = "") -> int:
        """kind "db" or "cache": the span is left out of the thread's apportioned profile."""
    def span_end(self, kind: str, handle: int) -> None: ...
    def bill(self) -> dict: ...

class Recorder:
    """Queue, sender thread and spool of one worker process."""

    def __init__(
        self,
        server_url: str,
        token: str = "",
        spool_dir: str = "",
        service: str = "",
        host: str = "",
        cluster: str = "",
        region: str = "",
        commit: str = "",
        queue_capacity: int = 10000,
        batch_max_records: int = 1000,
        batch_max_delay_ms: int = 1000,
        user_salt: str = "",
        sender_id: str = "",
    ) -> None: ...
    def count(self, endpoint: str, user_key: str, sampled: bool) -> None: ...
    def submit(
        self,
        scope: RequestScope,
        endpoint: str,
        method: str,
        status: int,
        flags: dict[str, str],
        user_key: str,
        sample_rate: float,
        request_id: str,
        profile: bytes | Profiler | None = None,
    ) -> bool: ...
    def flush(self, timeout_s: float = 5.0) -> bool: ...
    def close(self, timeout_s: float = 5.0) -> bool: ...
    def after_fork_in_child(self) -> None: ...
    def stats(self) -> dict: ...
    @property
    def sender_id(self) -> str: ...
