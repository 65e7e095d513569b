"""Django middleware: the CPU bill of sampled requests, counts of all.

Add to settings::

    MIDDLEWARE = ["cpuledger.django.CpuLedgerMiddleware", *MIDDLEWARE]
    CPULEDGER = {"SERVER_URL": "http://127.0.0.1:8750", "SAMPLE_RATE": 0.01,
                 "SERVICE": "shop", "CLUSTER": "east-a", "REGION": "us-east"}

Put it first, so the bill covers the other middleware too. Endpoints are the
resolved route patterns ("/users/<int:id>/", "/" for the root), "static"
under STATIC_URL, "<unmatched>" for the rest, never raw paths. DB time comes
from an execute wrapper kept on every database connection (a pass-through outside
sampled requests), cache time from
wrapping the configured cache backends' methods. Flags default to
django-waffle's flags and switches when waffle is installed.
"""

from __future__ import annotations

import functools
import sys
import time
from urllib.parse import urlsplit
from typing import Any, Callable, Optional

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from cpuledger._config import ConfigError, build_config
from cpuledger._runtime import Runtime, environ_key, span
from cpuledger._runtime import current_scope as _current

_CACHE_METHODS = ("get", "set", "add", "delete", "get_many", "set_many", "delete_many", "incr",
                  "decr", "touch", "has_key", "get_or_set", "clear")


def _db_wrapper(execute, sql, params, many, context):
    if _current.get() is None:  # outside sampled requests: a pass-through
        return execute(sql, params, many, context)
    with span("db"):
        return execute(sql, params, many, context)


def _wrap_cache_method(fn: Callable) -> Callable:
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if _current.get() is None:
            return fn(*args, **kwargs)
        with span("cache"):
            return fn(*args, **kwargs)

    wrapper.__cpuledger_wrapped__ = True
    return wrapper


def _install_db_wrapper(sender, connection, **kwargs) -> None:
    """Keep `_db_wrapper` on every database connection for good: it is a
    pass-through (one ContextVar lookup) outside sampled requests, so no
    per-request set-up is needed."""
    if _db_wrapper not in connection.execute_wrappers:
        connection.execute_wrappers.insert(0, _db_wrapper)


def _instrument_databases() -> None:
    from django.db import connections
    from django.db.backends.signals import connection_created

    connection_created.connect(_install_db_wrapper, dispatch_uid="cpuledger-db-wrapper")
    for conn in connections.all(initialized_only=True):  # already open in this thread
        _install_db_wrapper(None, conn)


def _instrument_caches() -> None:
    """Wrap the methods of every configured cache backend class, once."""
    from django.core.cache import caches

    for alias in getattr(settings, "CACHES", {}) or {}:
        cls = type(caches[alias])
        for name in _CACHE_METHODS:
            fn = cls.__dict__.get(name)
            if fn is None:  # inherited: wrap the inherited one on this class
                fn = getattr(cls, name, None)
            if fn is None or getattr(fn, "__cpuledger_wrapped__", False):
                continue
            setattr(cls, name, _wrap_cache_method(fn))


_WAFFLE_NAMES_TTL_S = 10.0
_waffle_names: tuple[float, list, list] = (0.0, [], [])


def _waffle_flags(request) -> dict:
    """Every waffle flag and switch, on or off for this request. The lists of
    names are re-read every few seconds, not per request (each read is a
    cache round trip); whether a flag is on is asked per request."""
    global _waffle_names
    import waffle

    fetched, flags, switches = _waffle_names
    now = time.monotonic()
    if now - fetched > _WAFFLE_NAMES_TTL_S:
        from waffle.models import Flag, Switch

        flags = [f.name for f in Flag.get_all()]
        switches = [s.name for s in Switch.get_all()]
        _waffle_names = (now, flags, switches)
    out = {}
    for name in flags:
        out[name] = "on" if waffle.flag_is_active(request, name) else "off"
    for name in switches:
        out["switch:" + name] = "on" if waffle.switch_is_active(name) else "off"
    return out


def _default_user_key(request) -> Optional[str]:
    """The authenticated user's pk if the request already loaded the user
    (never triggers a query), else the session cookie."""
    user = getattr(request, "_cached_user", None)
    if user is not None and getattr(user, "is_authenticated", False):
        return "user:" + str(user.pk)
    session_cookie = request.COOKIES.get(getattr(settings, "SESSION_COOKIE_NAME", "sessionid"))
    return "session:" + session_cookie if session_cookie else None


def _endpoint_of_match(match) -> str:
    """The route pattern of a ResolverMatch ("/users/<int:id>/", "/" for the
    empty pattern), else the view name."""
    if match is None:
        return "<unmatched>"
    if match.route is not None:
        return "/" + match.route.lstrip("^")
    return match.view_name or "<unnamed>"


def _static_prefix() -> Optional[str]:
    """The path under which this app serves static files (whitenoise, or
    staticfiles' own view): None when STATIC_URL points at another host."""
    url = getattr(settings, "STATIC_URL", None)
    if not url:
        return None
    parsed = urlsplit(str(url))
    if parsed.netloc:
        return None
    return "/" + parsed.path.strip("/") + "/"


def endpoint_of(request, static_prefix: Optional[str] = None, resolve: Optional[Callable] = None) -> str:
    """The request's endpoint, from the match routing left on it, or from
    `resolve(path)` when asked before the view runs."""
    if static_prefix and request.path_info.startswith(static_prefix):
        return "static"  # whitenoise answers these before routing: no match to name them
    if resolve is not None:
        return _endpoint_of_match(resolve(request.path_info))
    return _endpoint_of_match(getattr(request, "resolver_match", None))


def _resolve_or_none(path: str):
    from django.urls import Resolver404, resolve

    try:
        return resolve(path)
    except Resolver404:
        return None


def _testing() -> bool:
    """Django's own signs of a test run: `manage.py test`, a TESTING setting,
    or the test environment set up (DiscoverRunner and pytest-django give
    django.core.mail an outbox)."""
    from django.core import mail

    argv = sys.argv
    return (len(argv) > 1 and argv[1] == "test") or bool(getattr(settings, "TESTING", False)) \
        or hasattr(mail, "outbox")


def _config():
    raw = getattr(settings, "CPULEDGER", None)
    if raw is None:
        raise ImproperlyConfigured("cpuledger: add a CPULEDGER dict to your settings (SERVER_URL at least)")
    default_service = (getattr(settings, "SETTINGS_MODULE", "") or "django").split(".")[0]
    try:
        config = build_config(raw, default_service=default_service, source="settings.CPULEDGER",
                              cwd=str(getattr(settings, "BASE_DIR", "") or "") or None, testing=_testing())
    except ConfigError as e:
        raise ImproperlyConfigured(str(e)) from None
    if config.flags is None and "waffle" in getattr(settings, "INSTALLED_APPS", ()):
        config = config.with_flags(_waffle_flags)
    return config


class CpuLedgerMiddleware:
    """Samples requests (rate from settings.CPULEDGER) and records their bill."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response):
        self.get_response = get_response
        config = _config()
        self.rt = Runtime(config)
        self._header = environ_key(config.request_id_header)
        self._static = _static_prefix()
        self._resolve_early = bool(config.endpoint_sample_rates) or config.profile_min_per_minute > 0
        if self.rt.recording:
            _instrument_caches()
            _instrument_databases()

    def __call__(self, request):
        rt = self.rt
        if not rt.recording:
            return self.get_response(request)
        req = rt.begin(request.META.get(self._header) or "", self._early_endpoint(request))
        try:
            response = self.get_response(request)
        except BaseException:
            rt.leave(req)
            self._finish(req, request, 500)
            raise
        rt.leave(req)
        self._finish(req, request, getattr(response, "status_code", 0))
        return response

    def _finish(self, req, request, status) -> None:
        self.rt.finish(req, request, lambda: endpoint_of(request, self._static), request.method or "", status,
                       lambda: _default_user_key(request))

    def _early_endpoint(self, request) -> Optional[str]:
        """The endpoint before the view runs, so that only requests sampled at
        their own rate are metered, and a quiet one profiled at its own;
        needed only when rates differ by endpoint."""
        if not self._resolve_early:
            return None
        try:
            return endpoint_of(request, self._static, _resolve_or_none)
        except Exception as e:
            self.rt.error("resolve", e)
            return None
