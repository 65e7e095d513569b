"""Settings glue: one validated Config from a Django ``CPULEDGER`` dict or
WSGI/ASGI keyword arguments. Bad settings fail at start-up, naming the key."""

from __future__ import annotations

import difflib
import importlib
import os
import socket
import subprocess
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional


class ConfigError(ValueError):
    """A cpuledger setting is wrong; the message names the key."""


# Every key a user may set, with its default. Keys are upper case in Django's
# CPULEDGER dict and lower case as WSGI/ASGI keyword arguments.
DEFAULTS: dict[str, Any] = {
    "ENABLED": True,
    "SERVER_URL": None,          # required when ENABLED
    "TOKEN": "",
    "SAMPLE_RATE": 0.01,
    "ENDPOINT_SAMPLE_RATES": {},  # endpoint -> rate, overrides SAMPLE_RATE
    "SERVICE": None,              # default: the Django settings module / the app's name
    "HOST": None,                 # default: socket.gethostname()
    "CLUSTER": "",
    "REGION": "",
    "COMMIT": None,               # default: $COMMIT_ENV, else `git rev-parse --short HEAD`
    "COMMIT_ENV": "CPULEDGER_COMMIT",
    "FLAGS": None,                # callable(request) -> {name: value}; Django default: waffle
    "USER_KEY": None,             # callable(request) -> str | None
    "USER_SALT": "",
    "REQUEST_ID_HEADER": "X-Request-ID",
    "SPOOL_DIR": "",
    "COUNTER_SOURCE": "auto",
    "QUEUE_CAPACITY": 10000,
    "BATCH_MAX_RECORDS": 1000,
    "BATCH_MAX_DELAY_MS": 1000,
    "PROFILE_RATE": 0.0,          # share of sampled requests that also carry a function profile
    "PROFILE_MODE": "fast",       # "fast" (eval-frame hook, Python frames) | "exact" (cProfile-like)
    # auto (= apportioned: the request's bill, less its db and cache spans, shared over
    # TSC-timed frames) | apportioned | instructions | cycles | cpu | wall (measured per frame)
    "PROFILE_SOURCE": "auto",
}


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
    profile_mode: str = "fast"
    profile_source: str = "auto"
    extra: Mapping[str, Any] = field(default_factory=dict)


def _fail(key: str, why: str) -> ConfigError:
    return ConfigError(f"cpuledger setting {key}: {why}")


def _rate(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(key, f"must be a number in [0, 1], got {value!r}")
    if not 0.0 <= float(value) <= 1.0:
        raise _fail(key, f"must be in [0, 1], got {value!r}")
    return float(value)


def _positive_int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _fail(key, f"must be a positive integer, got {value!r}")
    return value


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


def _url(key: str, value: Any) -> str:
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


def detect_commit(env_var: str, cwd: Optional[str] = None) -> str:
    """The running code's commit: $env_var, else `git rev-parse --short HEAD`, else ""."""
    if os.environ.get(env_var):
        return os.environ[env_var]
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=cwd, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def build_config(settings: Mapping[str, Any], *, default_service: str, source: str,
                 cwd: Optional[str] = None) -> Config:
    """Validate `settings` (upper-case keys) into a Config. `source` names where
    the settings came from, for messages ("settings.CPULEDGER", "CpuLedgerWSGI(...)")."""
    if not isinstance(settings, Mapping):
        raise ConfigError(f"{source} must be a dict, got {type(settings).__name__}")
    for key in settings:
        if key not in DEFAULTS:
            close = difflib.get_close_matches(str(key), DEFAULTS, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"{source}: unknown cpuledger setting {key!r}{hint}")
    s = {**DEFAULTS, **settings}
    enabled = bool(s["ENABLED"])
    server_url = _url("SERVER_URL", s["SERVER_URL"]) if enabled or s["SERVER_URL"] else ""
    rates = s["ENDPOINT_SAMPLE_RATES"]
    if not isinstance(rates, Mapping):
        raise _fail("ENDPOINT_SAMPLE_RATES", "must be a dict of endpoint -> rate")
    source_name = s["COUNTER_SOURCE"]
    if source_name not in ("auto", "hardware", "task_clock", "thread_cputime"):
        raise _fail("COUNTER_SOURCE", f"must be auto, hardware, task_clock or thread_cputime, got {source_name!r}")
    if s["PROFILE_MODE"] not in ("fast", "exact"):
        raise _fail("PROFILE_MODE", f"must be fast or exact, got {s['PROFILE_MODE']!r}")
    if s["PROFILE_SOURCE"] not in ("auto", "apportioned", "instructions", "cycles", "cpu", "wall"):
        raise _fail("PROFILE_SOURCE", "must be auto, apportioned, instructions, cycles, cpu or wall, "
                    f"got {s['PROFILE_SOURCE']!r}")
    for key in ("TOKEN", "CLUSTER", "REGION", "USER_SALT", "REQUEST_ID_HEADER", "SPOOL_DIR", "COMMIT_ENV"):
        if not isinstance(s[key], str):
            raise _fail(key, f"must be a string, got {s[key]!r}")
    return Config(
        enabled=enabled,
        server_url=server_url,
        token=s["TOKEN"],
        sample_rate=_rate("SAMPLE_RATE", s["SAMPLE_RATE"]),
        endpoint_sample_rates={str(k): _rate(f"ENDPOINT_SAMPLE_RATES[{k!r}]", v) for k, v in rates.items()},
        service=str(s["SERVICE"] or default_service),
        host=str(s["HOST"] or socket.gethostname()),
        cluster=s["CLUSTER"],
        region=s["REGION"],
        commit=str(s["COMMIT"]) if s["COMMIT"] else detect_commit(s["COMMIT_ENV"], cwd),
        flags=_callable("FLAGS", s["FLAGS"]),
        user_key=_callable("USER_KEY", s["USER_KEY"]),
        user_salt=s["USER_SALT"],
        request_id_header=s["REQUEST_ID_HEADER"],
        spool_dir=s["SPOOL_DIR"],
        counter_source=source_name,
        queue_capacity=_positive_int("QUEUE_CAPACITY", s["QUEUE_CAPACITY"]),
        batch_max_records=_positive_int("BATCH_MAX_RECORDS", s["BATCH_MAX_RECORDS"]),
        batch_max_delay_ms=_positive_int("BATCH_MAX_DELAY_MS", s["BATCH_MAX_DELAY_MS"]),
        profile_rate=_rate("PROFILE_RATE", s["PROFILE_RATE"]),
        profile_mode=s["PROFILE_MODE"],
        profile_source=s["PROFILE_SOURCE"],
    )


def from_kwargs(kwargs: Mapping[str, Any], *, default_service: str, source: str) -> Config:
    """WSGI/ASGI wrappers take the same settings as lower-case keyword arguments."""
    return build_config({k.upper(): v for k, v in kwargs.items()}, default_service=default_service,
                        source=source)
