"""The middleware core, shared by Django, WSGI and ASGI: the sampling and
profiling decisions, the request's scope from ``begin`` to ``finish``, the
one recorder of the process, and the promise that nothing from cpuledger
reaches the application.

The framework modules (django.py, wsgi.py, asgi.py) are adapters: they say
where a request starts and ends, what its endpoint, method and status are,
and call only this module and the native extension.

Sampling. Each request draws one number u in [0, 1) — a hash of its request
id when it has one (every service that sees the id decides alike), else a
random draw — and is sampled when u < rate(endpoint). A framework that knows
the endpoint before the application runs (Django resolves it) passes it to
``begin``; the others learn it only after routing, so ``begin`` starts the
counters when u is below the largest rate the request could get, and
``finish`` keeps the bill only when u is below its endpoint's rate. Every
endpoint is thus sampled at exactly its own rate; the cost is that requests
between the two rates are metered (and profiled) for nothing.

Profiling. A sampled request is profiled when a second draw (its own salt)
is below PROFILE_RATE, or, where the endpoint is known at ``begin`` and
PROFILE_MIN_PER_MINUTE is set, below that floor over the endpoint's sampled
requests a minute in this process (EndpointRates): a quiet endpoint is
profiled at a higher rate, up to every sampled request, so that it has
profiles enough to compare; a busy one at PROFILE_RATE.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import logging
import os
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

from cpuledger import _native
from cpuledger._config import Config

log = logging.getLogger("cpuledger")

_UNIT = float(1 << 64)

# The RequestScope of the sampled request being served in this context (None
# when the request is not sampled). Spans look it up; ASGI tasks inherit it.
current_scope: contextvars.ContextVar[Optional[Any]] = contextvars.ContextVar("cpuledger_scope", default=None)


_logged_errors: set[str] = set()


def internal_error(where: str, exc: BaseException) -> None:
    """Log an internal error once per kind (later ones are not logged). Never raises."""
    try:
        key = f"{where}:{type(exc).__name__}"
        if key not in _logged_errors:
            _logged_errors.add(key)
            log.warning("cpuledger: internal error in %s (%r); the request was not affected, "
                        "further errors of this kind are not logged", where, exc)
    except Exception:
        pass


@contextlib.contextmanager
def span(kind: str):
    """Time a block as part of the current sampled request: kind "db", "cache",
    or any custom name. A no-op outside a sampled request; a failure to time
    it never fails the block."""
    scope = current_scope.get()
    handle = None
    if scope is not None:
        try:
            handle = scope.span_begin(kind)
        except Exception as e:
            internal_error("span", e)
    try:
        yield
    finally:
        if handle is not None:
            try:
                scope.span_end(kind, handle)
            except Exception as e:
                internal_error("span", e)


def profile_step(req: Optional["Request"], fn: Callable[[Any], Any], arg: Any) -> Any:
    """fn(arg) — one step of a suspended request (ASGI: its coroutine's send
    or throw) — recorded in the request's paused profile when it has one.
    Returns and raises exactly what fn does; raises nothing of its own.
    Call between the scope's resume and suspend, so the step is billed."""
    profiler = req.steps if req is not None else None
    if profiler is None:
        return fn(arg)
    # Profiler.step calls fn exactly once and raises only what fn raises:
    # no try here, which could not tell the two apart.
    return profiler.step(fn, arg)


def step(scope: Optional[Any], resume: bool) -> Optional[Any]:
    """Resume or suspend a step-metered scope; None from then on if it fails
    (the bill is short, the application unaffected)."""
    if scope is None:
        return None
    try:
        scope.resume() if resume else scope.suspend()
        return scope
    except Exception as e:
        internal_error("step", e)
        return None


# --- one recorder per process ------------------------------------------------
#
# A recorder is a sender thread, a queue and a spool directory: one per
# process, however many middleware instances there are (Django's test client
# builds one per client). Middleware with different recorder settings (two
# services in one process) get one recorder per distinct set.

_RECORDER_FIELDS = ("server_url", "token", "spool_dir", "service", "host", "cluster", "region", "commit",
                    "queue_capacity", "batch_max_records", "batch_max_delay_ms", "user_salt")
_recorders: dict[tuple, Any] = {}
_recorders_lock = threading.Lock()


def _recorder_key(config: Config) -> tuple:
    return tuple(getattr(config, f) for f in _RECORDER_FIELDS) + (config.counter_source,)


def _start_recorder(config: Config) -> Any:
    _native.configure_counters(config.counter_source)
    kwargs = {f: getattr(config, f) for f in _RECORDER_FIELDS[1:]}
    spool_is_new = bool(config.spool_dir) and not os.path.isdir(config.spool_dir)
    recorder = _native.Recorder(config.server_url, **kwargs)
    log.info("cpuledger: recording %s to %s, spooling to %s (pid %d)", config.service, config.server_url,
             config.spool_dir or "nowhere (SPOOL_DIR is empty)", os.getpid())
    if spool_is_new:  # a new directory on disk is worth a line even where INFO is not shown
        log.warning("cpuledger: created the spool directory %s (SPOOL_DIR chooses another, \"\" none)",
                    config.spool_dir)
    return recorder


def shared_recorder(config: Config) -> Any:
    """The process's recorder for these settings, started on first use."""
    key = _recorder_key(config)
    with _recorders_lock:
        recorder = _recorders.get(key)
        if recorder is None:
            if _recorders:
                log.warning("cpuledger: a second recorder in pid %d: middleware settings differ "
                            "(service %r)", os.getpid(), config.service)
            recorder = _recorders[key] = _start_recorder(config)
        return recorder


def _after_fork_in_child() -> None:
    """gunicorn forks workers after the app (and so the recorders) may have
    been made: each child needs its own sender thread and sender id."""
    global _recorders_lock
    _recorders_lock = threading.Lock()  # another thread may have held it across fork()
    for recorder in _recorders.values():
        try:
            recorder.after_fork_in_child()
        except Exception as e:  # never let the child's start-up fail because of us
            log.warning("cpuledger: recorder after fork failed (%r)", e)


def _close_all(timeout_s: float = 5.0) -> None:
    for recorder in list(_recorders.values()):
        try:
            recorder.close(timeout_s)
        except Exception as e:
            log.warning("cpuledger: recorder close failed (%r)", e)


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_close_all)


# --- one request -------------------------------------------------------------


def environ_key(header: str) -> str:
    """Where a WSGI environ (and Django's META) keeps `header`: X-Request-ID -> HTTP_X_REQUEST_ID."""
    return "HTTP_" + header.upper().replace("-", "_")


def _draw(request_id: str, salt: str) -> float:
    """u in [0, 1): from the request id when there is one, else random."""
    if request_id:
        return int(_native.hash_user(request_id, salt), 16) / _UNIT
    return random.random()


def _below(u: float, rate: float) -> bool:
    # rate 1 always samples, even the one id whose hash rounds to 1.0.
    return rate >= 1.0 or u < rate


class EndpointRates:
    """Each endpoint's sampled requests a minute in this process: the minutes
    before, averaged with weights halving each minute back, or this minute's
    count so far when larger, so that a burst (or the first minute of a busy
    endpoint) is not profiled whole. Updated without a lock: a count lost to
    a race moves a rate a little, and the GIL keeps the dict itself whole."""

    CAPACITY = 10000  # endpoints tracked; beyond, a new one gets PROFILE_RATE alone

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._state: dict[str, list] = {}  # endpoint -> [minute, count in it, average before]

    def _current(self, endpoint: str) -> Optional[list]:
        minute = int(self._clock() // 60)
        st = self._state.get(endpoint)
        if st is None:
            if len(self._state) >= self.CAPACITY:
                return None
            st = self._state[endpoint] = [minute, 0, 0.0]
        elif st[0] != minute:
            gone = minute - st[0]  # whole minutes since st's; the ones between had no request
            st[2] = (0.5 * st[2] + 0.5 * st[1]) * 0.5 ** (gone - 1)
            st[0], st[1] = minute, 0
        return st

    def note(self, endpoint: str) -> None:
        """One more sampled request of `endpoint`."""
        st = self._current(endpoint)
        if st is not None:
            st[1] += 1

    def per_minute(self, endpoint: str) -> Optional[float]:
        """The rate a request of `endpoint` starting now is judged against
        (itself included), or None when it is not tracked."""
        st = self._current(endpoint)
        return None if st is None else max(st[2], st[1] + 1.0)


@dataclass
class Request:
    """One request from ``begin`` to ``finish``. `scope` is None when the
    request cannot be sampled whatever its endpoint turns out to be."""

    u: float
    request_id: str
    scope: Optional[Any] = None
    token: Optional[contextvars.Token] = None
    profiler: Optional[Any] = None
    # The profiler while steps may still be added to it (a suspended
    # request's: ASGI); None from ``leave`` on, so that a task the request
    # spawned and that outlives it cannot resume a profile that is done, or
    # that the thread's profiler has since begun for another request.
    steps: Optional[Any] = None


class Runtime:
    """One per middleware instance; the recorder behind it is shared."""

    def __init__(self, config: Config):
        self.config = config
        self.errors = 0
        rates = [config.sample_rate, *config.endpoint_sample_rates.values()]
        self._max_rate = max(rates)
        # With every rate 0 or 1 the draw decides nothing: skip its hash.
        self._draws = any(0.0 < r < 1.0 for r in rates)
        # Each serving thread's profiler, reset between requests: the call
        # paths it has seen stay warm (see Profiler.reset).
        self._profilers = threading.local()
        self._endpoint_rates = EndpointRates() if config.profile_min_per_minute > 0 else None
        self.recorder: Optional[Any] = shared_recorder(config) if config.enabled else None
        if not config.enabled:
            log.info("cpuledger: not recording (ENABLED is False, or None under a test runner)")

    @property
    def recording(self) -> bool:
        return self.recorder is not None

    def error(self, where: str, exc: BaseException) -> None:
        """Count an internal error; log each kind once. Never raises."""
        self.errors += 1
        internal_error(where, exc)

    def rate_for(self, endpoint: Optional[str]) -> float:
        rate = self.config.endpoint_sample_rates.get(endpoint) if endpoint is not None else None
        return self.config.sample_rate if rate is None else rate

    def begin(self, request_id: str, endpoint: Optional[str] = None, *, suspended: bool = False,
              profile: bool = True) -> Optional[Request]:
        """Start a request: the counters run from here when it may be sampled.
        `endpoint` when the framework knows it already; `suspended` for a
        scope metered step by step (ASGI), whose profile, if it gets one,
        starts paused and records only what runs in ``profile_step``;
        `profile` False where a profile cannot be taken. None when not
        recording. Never raises."""
        if self.recorder is None:
            return None
        try:
            req = Request(_draw(request_id, "cpuledger-sampling") if self._draws else 0.0, request_id)
            ceiling = self.rate_for(endpoint) if endpoint is not None else self._max_rate
            if not _below(req.u, ceiling):
                return req
            req.scope = _native.RequestScope()
            if suspended:
                req.scope.suspend()
            req.token = current_scope.set(req.scope)
        except Exception as e:
            self.error("begin", e)
            return None
        if profile:
            req.profiler = self._start_profile(request_id, endpoint, paused=suspended)
            if suspended:
                req.steps = req.profiler
        return req

    def leave(self, req: Optional[Request]) -> None:
        """The application has returned: stop the profiler and leave the
        request's context. Call in the context `begin` ran in. Never raises."""
        if req is None or req.scope is None:
            return
        req.steps = None
        try:
            if req.profiler is not None:
                req.profiler.disable()
        except Exception as e:
            req.profiler = None
            self.error("profile", e)
        try:
            if req.token is not None:
                current_scope.reset(req.token)
                req.token = None
        except Exception as e:
            self.error("leave", e)

    def finish(self, req: Optional[Request], request: Any, endpoint: Callable[[], str], method: str, status: Any,
               default_user: Optional[Callable[[], Optional[str]]] = None) -> None:
        """Bill (when sampled at its endpoint's rate) and count the request.
        `endpoint` names it (asked here, so that its failure is ours too);
        `request` is what FLAGS and USER_KEY callables receive. Never raises."""
        if req is None:
            return
        try:
            name = endpoint()
            rate = self.rate_for(name)
            sampled = req.scope is not None and _below(req.u, rate)
            user = self.user_of(request, default_user)
            if sampled:
                if self._endpoint_rates is not None:
                    self._endpoint_rates.note(name)
                self.recorder.submit(req.scope, name, method, int(status), self.flags_of(request), user, rate,
                                     req.request_id, req.profiler)
            self.recorder.count(name, user, sampled)
        except Exception as e:
            self.error("finish", e)

    def profile_rate_for(self, endpoint: Optional[str]) -> float:
        """The share of `endpoint`'s sampled requests to profile now: PROFILE_RATE,
        raised for a quiet endpoint to PROFILE_MIN_PER_MINUTE over its rate."""
        rate = self.config.profile_rate
        if self._endpoint_rates is None or endpoint is None:
            return rate
        per_minute = self._endpoint_rates.per_minute(endpoint)
        if per_minute is None:
            return rate
        return max(rate, min(1.0, self.config.profile_min_per_minute / per_minute))

    def _start_profile(self, request_id: str, endpoint: Optional[str], paused: bool = False) -> Optional[Any]:
        """A running (or `paused`) Profiler for this request, or None (most
        requests): when a draw is below its endpoint's profile rate. The draw
        has its own salt: independent of sampling, yet a function of the
        request id. The first one per process calibrates (tens of ms)."""
        try:
            rate = self.profile_rate_for(endpoint)
            if rate <= 0.0 or not _below(_draw(request_id, "cpuledger-profiling"), rate):
                return None
            profiler = self._thread_profiler()
            profiler.enable()
            if paused:
                profiler.pause()
            return profiler
        except Exception as e:
            self.error("profile", e)
            return None

    def _thread_profiler(self) -> Any:
        # One enabled (a request's paused profile, under ASGI) is never
        # shared: a concurrent request gets a profiler of its own, which
        # becomes the thread's warm one from then on.
        source = self.config.profile_source
        kind = ("apportioned" if source == "auto" else source, self.config.profile_mode)
        profiler = getattr(self._profilers, "profiler", None)
        if profiler is None or self._profilers.kind != kind or profiler.enabled:
            profiler = _native.Profiler(source=kind[0], mode=kind[1])
            self._profilers.profiler, self._profilers.kind = profiler, kind
        else:
            profiler.reset()
        return profiler

    def flags_of(self, request: Any) -> Mapping[str, str]:
        fn = self.config.flags
        if fn is None:
            return {}
        raw = fn(request) or {}
        return {str(k): ("on" if v else "off") if isinstance(v, bool) else str(v) for k, v in raw.items()}

    def user_of(self, request: Any, default: Optional[Callable[[], Optional[str]]]) -> str:
        fn = self.config.user_key
        if fn is not None:
            key = fn(request)
        else:
            key = default() if default is not None else None
        return "" if key is None else str(key)
