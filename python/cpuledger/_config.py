"""Settings glue: one validated Config from a Django ``CPULEDGER`` dict or
WSGI/ASGI keyword arguments. Bad settings fail at start-up, naming the key.

``SETTINGS`` is the one table of settings: name, type, default and meaning.
The validation below reads it, and the README's settings table is checked
against it by tests/python/test_parity.py."""

from __future__ import annotations

import difflib
import functools
import importlib
import os
import socket
import subprocess
import sys
import urllib.parse
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, NamedTuple, Optional, get_args

from cpuledger import _native


class ConfigError(ValueError):
    """A cpuledger setting is wrong; the message names the key."""


# COUNTER_SOURCES comes from the native table (src/counters kSources): the
# names records carry, so a setting that works here is a name the native side
# and the server accept too. The literal is for type checkers; _native.pyi
# spells it the same and tests/python/test_counters.py holds both to the table.
CounterSourceName = Literal["auto", "hardware", "task_clock", "thread_cputime"]
ProfileSourceName = Literal["auto", "apportioned", "instructions", "cycles", "cpu", "wall"]
ProfileModeName = Literal["fast", "exact"]
COUNTER_SOURCES: tuple[str, ...] = ("auto", *(name for name, _code, _unit in _native.counter_sources()))
PROFILE_SOURCES: tuple[str, ...] = get_args(ProfileSourceName)
PROFILE_MODES: tuple[str, ...] = get_args(ProfileModeName)


def _fail(key: str, why: str) -> ConfigError:
    return ConfigError(f"cpuledger setting {key}: {why}")


def _optional_bool(key: str, value: Any) -> Optional[bool]:
    if value is not None and not isinstance(value, bool):
        raise _fail(key, f"must be True, False or None, got {value!r}")
    return value


def _rate(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(key, f"must be a number in [0, 1], got {value!r}")
    if not 0.0 <= float(value) <= 1.0:
        raise _fail(key, f"must be in [0, 1], got {value!r}")
    return float(value)


def _per_minute(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) < float("inf"):
        raise _fail(key, f"must be a number >= 0 (requests a minute), got {value!r}")
    return float(value)


def _rates(key: str, value: Any) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise _fail(key, "must be a dict of endpoint -> rate")
    return {str(k): _rate(f"{key}[{k!r}]", v) for k, v in value.items()}


def _positive_int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _fail(key, f"must be a positive integer, got {value!r}")
    return value


def _string(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _fail(key, f"must be a string, got {value!r}")
    return value


def _optional_string(key: str, value: Any) -> Optional[str]:
    return None if value is None else _string(key, value)


def _choice(options: tuple[str, ...]) -> Callable[[str, Any], str]:
    def check(key: str, value: Any) -> str:
        if value not in options:
            raise _fail(key, f"must be one of {', '.join(options)}, got {value!r}")
        return value

    return check


def _callable(key: str, value: Any) -> Optional[Callable]:
    if value is None:
        return None
    if isinstance(value, str):  # a dotted path, as Django settings usually say
        module, _, name = value.rpartition(".")
        try:
            value = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError, ValueError) as e:
            raise _fail(key, f"cannot import {value!r}: {e}") from None
    if not callable(value):
        raise _fail(key, f"must be a callable or a dotted path to one, got {value!r}")
    return value


def _url(key: str, value: Any) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise _fail(key, f"must be a URL such as http://127.0.0.1:8750, got {value!r}")
    parsed = urllib.parse.urlsplit(value)
    if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.path not in ("", "/"):
        raise _fail(key, f"must be http(s)://host[:port] with no path, got {value!r}")
    try:
        parsed.port
    except ValueError:
        raise _fail(key, f"has a bad port: {value!r}") from None
    return value.rstrip("/")


class Setting(NamedTuple):
    """One row of the settings table (and of the README's)."""

    name: str       # upper case in Django's CPULEDGER dict, lower case as a WSGI/ASGI keyword
    type: str       # as the README says it
    default: Any
    meaning: str
    check: Callable[[str, Any], Any]


SETTINGS: tuple[Setting, ...] = (
    Setting("ENABLED", "bool or None", None,
            "record at all; None: yes, except under a test runner (pytest, manage.py test)", _optional_bool),
    Setting("SERVER_URL", "str or None", None, "the `cpuledger serve` to send to (required when recording)", _url),
    Setting("TOKEN", "str", "", "bearer token for the server", _string),
    Setting("SAMPLE_RATE", "float", 0.01, "share of requests that get a CPU bill (all are counted)", _rate),
    Setting("ENDPOINT_SAMPLE_RATES", "dict[str, float]", {}, "endpoint -> rate, overrides SAMPLE_RATE", _rates),
    Setting("SERVICE", "str or None", None, "service name; None: the settings module / the app's name",
            _optional_string),
    Setting("HOST", "str or None", None, "host name; None: socket.gethostname()", _optional_string),
    Setting("CLUSTER", "str", "", "cluster dimension", _string),
    Setting("REGION", "str", "", "region dimension", _string),
    Setting("COMMIT", "str or None", None, "running commit; None: $COMMIT_ENV, else `git rev-parse`",
            _optional_string),
    Setting("COMMIT_ENV", "str", "CPULEDGER_COMMIT", "the environment variable that holds the commit", _string),
    Setting("FLAGS", "callable, str or None", None,
            "callable(request) -> {flag: value}, or its dotted path; Django default: django-waffle", _callable),
    Setting("USER_KEY", "callable, str or None", None,
            "callable(request) -> active-user key (hashed before it leaves); Django default: user or session",
            _callable),
    Setting("USER_SALT", "str", "", "salt of the user-key hash", _string),
    Setting("REQUEST_ID_HEADER", "str", "X-Request-ID",
            "header whose value decides sampling, so one trace is sampled everywhere", _string),
    Setting("SPOOL_DIR", "str or None", None,
            "where batches wait while the server is down; None: $XDG_CACHE_HOME/cpuledger/spool "
            "(else ~/.cache/cpuledger/spool); \"\": no spool", _optional_string),
    Setting("COUNTER_SOURCE", "str", "auto", "auto, hardware, task_clock or thread_cputime (the names records carry)",
            _choice(COUNTER_SOURCES)),
    Setting("QUEUE_CAPACITY", "int", 10000, "records queued before new ones are dropped (and counted)",
            _positive_int),
    Setting("BATCH_MAX_RECORDS", "int", 1000, "records per batch", _positive_int),
    Setting("BATCH_MAX_DELAY_MS", "int", 1000, "longest a record waits for its batch", _positive_int),
    Setting("PROFILE_RATE", "float", 0.0, "share of sampled requests that also carry a function profile (Django, WSGI, ASGI)", _rate),
    Setting("PROFILE_MIN_PER_MINUTE", "float", 0.0,
            "Django: profile at least this many of each endpoint's sampled requests a minute in each process "
            "(its traffic permitting), so quiet endpoints get profiles too; 0: PROFILE_RATE alone", _per_minute),
    Setting("PROFILE_MODE", "str", "fast",
            "fast (eval-frame hook on 3.11-3.12, sys.monitoring on 3.13; Python frames) or exact (cProfile-equal counts)", _choice(PROFILE_MODES)),
    Setting("PROFILE_SOURCE", "str", "auto",
            "auto (= apportioned: the bill less db and cache, shared over TSC-timed frames), "
            "apportioned, or read per frame: instructions, cycles, cpu, wall", _choice(PROFILE_SOURCES)),
)
DEFAULTS: dict[str, Any] = {s.name: s.default for s in SETTINGS}


@dataclass(frozen=True)
class Config:
    enabled: bool
    server_url: str
    token: str
    sample_rate: float
    endpoint_sample_rates: Mapping[str, float]
    service: str
    host: str
    cluster: str
    region: str
    commit: str
    flags: Optional[Callable[[Any], Mapping[str, Any]]]
    user_key: Optional[Callable[[Any], Optional[str]]]
    user_salt: str
    request_id_header: str
    spool_dir: str
    counter_source: str
    queue_capacity: int
    batch_max_records: int
    batch_max_delay_ms: int
    profile_rate: float = 0.0
    profile_min_per_minute: float = 0.0
    profile_mode: str = "fast"
    profile_source: str = "auto"
    extra: Mapping[str, Any] = field(default_factory=dict)

    def with_flags(self, flags: Callable) -> "Config":
        return replace(self, flags=flags)


@functools.lru_cache(maxsize=None)
def detect_commit(env_var: str, cwd: Optional[str] = None) -> str:
    """The running code's commit: $env_var, else `git rev-parse --short HEAD`, else "".
    Cached: every middleware instance asks, and git costs a process."""
    if os.environ.get(env_var):
        return os.environ[env_var]
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=cwd, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def app_name(app: Any) -> str:
    """The default SERVICE of a wrapped WSGI/ASGI app: the name of the app
    object (Flask's name, FastAPI's title), not of its wsgi_app method."""
    owner = getattr(app, "__self__", app)
    for attr in ("name", "title", "__name__"):
        value = getattr(owner, attr, None)
        if isinstance(value, str) and value:
            return value
    return type(owner).__name__


def default_spool_dir() -> str:
    """Per user, so that pasting the README's settings never needs root."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return os.path.join(cache, "cpuledger", "spool")


def under_test_runner() -> bool:
    """True in the process that runs pytest's tests. The environment variable
    alone would also catch servers a test starts (they inherit it), and they
    are apps under test, not the runner."""
    return bool(os.environ.get("PYTEST_CURRENT_TEST")) and "_pytest" in sys.modules


def _check_keys(settings: Mapping[str, Any], source: str) -> None:
    if not isinstance(settings, Mapping):
        raise ConfigError(f"{source} must be a dict, got {type(settings).__name__}")
    for key in settings:
        if key not in DEFAULTS:
            close = difflib.get_close_matches(str(key), DEFAULTS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"{source}: unknown cpuledger setting {key!r}{hint}")


def build_config(settings: Mapping[str, Any], *, default_service: str, source: str,
                 cwd: Optional[str] = None, testing: bool = False) -> Config:
    """Validate `settings` (upper-case keys) into a Config. `source` names where
    the settings came from, for messages ("settings.CPULEDGER", "CpuLedgerWSGI(...)");
    `testing` is the framework's own sign of a test run (ENABLED=None turns off)."""
    _check_keys(settings, source)
    s = {s.name: s.check(s.name, settings.get(s.name, s.default)) for s in SETTINGS}
    enabled = s["ENABLED"] if s["ENABLED"] is not None else not (testing or under_test_runner())
    if enabled and s["SERVER_URL"] is None:
        raise _fail("SERVER_URL", "is required when recording (e.g. http://127.0.0.1:8750)")
    return Config(
        enabled=enabled,
        server_url=s["SERVER_URL"] or "",
        token=s["TOKEN"],
        sample_rate=s["SAMPLE_RATE"],
        endpoint_sample_rates=s["ENDPOINT_SAMPLE_RATES"],
        service=s["SERVICE"] or default_service,
        host=s["HOST"] or socket.gethostname(),
        cluster=s["CLUSTER"],
        region=s["REGION"],
        commit=s["COMMIT"] if s["COMMIT"] else detect_commit(s["COMMIT_ENV"], cwd),
        flags=s["FLAGS"],
        user_key=s["USER_KEY"],
        user_salt=s["USER_SALT"],
        request_id_header=s["REQUEST_ID_HEADER"],
        spool_dir=default_spool_dir() if s["SPOOL_DIR"] is None else s["SPOOL_DIR"],
        counter_source=s["COUNTER_SOURCE"],
        queue_capacity=s["QUEUE_CAPACITY"],
        batch_max_records=s["BATCH_MAX_RECORDS"],
        batch_max_delay_ms=s["BATCH_MAX_DELAY_MS"],
        profile_rate=s["PROFILE_RATE"],
        profile_min_per_minute=s["PROFILE_MIN_PER_MINUTE"],
        profile_mode=s["PROFILE_MODE"],
        profile_source=s["PROFILE_SOURCE"],
    )


def from_kwargs(kwargs: Mapping[str, Any], *, default_service: str, source: str) -> Config:
    """WSGI/ASGI wrappers take the same settings as lower-case keyword arguments."""
    config = build_config({k.upper(): v for k, v in kwargs.items()}, default_service=default_service,
                          source=source)
    if config.profile_min_per_minute > 0:
        raise _fail("PROFILE_MIN_PER_MINUTE", "is Django only: WSGI and ASGI learn a request's endpoint "
                    "after it starts, too late to choose its profile rate")
    return config
