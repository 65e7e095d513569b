"""The per-process half of the middleware: the native Recorder, the sampling
decision, and the promise that nothing from cpuledger reaches the application.

Framework modules (django.py, wsgi.py, asgi.py) call only this module and the
native extension."""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import logging
import os
import random
import threading
from typing import Any, Mapping, Optional

from cpuledger import _native
from cpuledger._config import Config

log = logging.getLogger("cpuledger")

_UNIT = float(1 << 64)

# The RequestScope of the sampled request being served in this context (None
# when the request is not sampled). Spans look it up; ASGI tasks inherit it.
current_scope: contextvars.ContextVar[Optional[Any]] = contextvars.ContextVar("cpuledger_scope", default=None)


@contextlib.contextmanager
def span(kind: str):
    """Time a block as part of the current sampled request: kind "db", "cache",
    or any custom name. A no-op outside a sampled request."""
    scope = current_scope.get()
    if scope is None:
        yield
        return
    handle = scope.span_begin(kind)
    try:
        yield
    finally:
        scope.span_end(kind, handle)


class Runtime:
    """One per process and config: owns the Recorder and counts internal errors."""

    def __init__(self, config: Config):
        self.config = config
        self.errors = 0
        self._logged: set[str] = set()
        self.recorder: Optional[Any] = None
        # Each serving thread's profiler, reset between requests: the call
        # paths it has seen stay warm (see Profiler.reset).
        self._profilers = threading.local()
        if not config.enabled:
            return
        _native.configure_counters(config.counter_source)
        self.recorder = _native.Recorder(
            config.server_url, token=config.token, spool_dir=config.spool_dir,
            service=config.service, host=config.host, cluster=config.cluster,
            region=config.region, commit=config.commit, queue_capacity=config.queue_capacity,
            batch_max_records=config.batch_max_records,
            batch_max_delay_ms=config.batch_max_delay_ms, user_salt=config.user_salt)
        # gunicorn forks workers after the app (and so this recorder) may have
        # been created: each child needs its own sender thread and sender id.
        os.register_at_fork(after_in_child=self._after_fork)
        atexit.register(self.close)

    def _after_fork(self) -> None:
        try:
            if self.recorder is not None:
                self.recorder.after_fork_in_child()
        except Exception as e:  # never let the child's start-up fail because of us
            self.error("fork", e)

    def close(self, timeout_s: float = 5.0) -> None:
        if self.recorder is not None:
            try:
                self.recorder.close(timeout_s)
            except Exception as e:
                self.error("close", e)

    def error(self, where: str, exc: BaseException) -> None:
        """Count an internal error; log each kind once. Never raises."""
        try:
            self.errors += 1
            key = f"{where}:{type(exc).__name__}"
            if key not in self._logged:
                self._logged.add(key)
                log.warning("cpuledger: internal error in %s (%r); the request was not affected, "
                            "further errors of this kind are counted silently", where, exc)
        except Exception:
            pass

    def rate_for(self, endpoint: Optional[str]) -> float:
        if endpoint is not None:
            rate = self.config.endpoint_sample_rates.get(endpoint)
            if rate is not None:
                return rate
        return self.config.sample_rate

    @staticmethod
    def decide(rate: float, request_id: Optional[str]) -> bool:
        """Sampled or not, decided once at request start. With a request id the
        answer is a function of the id, so every service that sees the same
        id (and rate) samples the same trace."""
        if rate >= 1.0:
            return True
        if rate <= 0.0:
            return False
        if request_id:
            h = int(_native.hash_user(request_id, "cpuledger-sampling"), 16)
            return h / _UNIT < rate
        return random.random() < rate

    def start_profile(self) -> Optional[Any]:
        """A running Profiler for this sampled request, or None (most requests).
        The first one per process calibrates its hook cost (tens of ms)."""
        rate = self.config.profile_rate
        if rate <= 0.0 or (rate < 1.0 and random.random() >= rate):
            return None
        source = self.config.profile_source
        kind = ("apportioned" if source == "auto" else source, self.config.profile_mode)
        profiler = getattr(self._profilers, "profiler", None)
        if profiler is None or self._profilers.kind != kind or profiler.enabled:
            profiler = _native.Profiler(source=kind[0], mode=kind[1])
            self._profilers.profiler, self._profilers.kind = profiler, kind
        else:
            profiler.reset()
        profiler.enable()
        return profiler

    @staticmethod
    def finish_profile(profiler: Optional[Any]) -> Optional[Any]:
        """The stopped profiler, for Recorder.submit (which costs an apportioned
        one with the request's final bill), or None."""
        if profiler is not None:
            profiler.disable()
        return profiler

    def flags_of(self, request: Any) -> Mapping[str, str]:
        fn = self.config.flags
        if fn is None:
            return {}
        raw = fn(request) or {}
        out = {}
        for k, v in raw.items():
            out[str(k)] = ("on" if v else "off") if isinstance(v, bool) else str(v)
        return out

    def user_of(self, request: Any, default: Optional[str]) -> str:
        fn = self.config.user_key
        key = fn(request) if fn is not None else default
        return "" if key is None else str(key)
