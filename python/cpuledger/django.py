"""Django middleware: the CPU bill of sampled requests, counts of all.

Add to settings::

    MIDDLEWARE = ["cpuledger.django.CpuLedgerMiddleware", *MIDDLEWARE]
    CPULEDGER = {"SERVER_URL": "http://127.0.0.1:8750", "SAMPLE_RATE": 0.01,
                 "SERVICE": "shop", "CLUSTER": "east-a", "REGION": "us-east"}

Put it first, so the bill covers the other middleware too. Endpoints are the
resolved route patterns ("/users/<int:id>/"), never raw paths. DB time comes
from an execute wrapper kept on every database connection (a pass-through outside
sampled requests), cache time from
wrapping the configured cache backends' methods. Flags default to
django-waffle's flags and switches when waffle is installed.
"""

from __future__ import annotations

import functools
import time
from typing import Any, Callable, Optional

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from cpuledger import _native
from cpuledger._config import ConfigError, build_config
from cpuledger._runtime import Runtime
from cpuledger._runtime import current_scope as _current

_CACHE_METHODS = ("get", "set", "add", "delete", "get_many", "set_many", "delete_many", "incr",
                  "decr", "touch", "has_key", "get_or_set", "clear")


def _db_wrapper(execute, sql, params, many, context):
    scope = _current.get()
    if scope is None:
        return execute(sql, params, many, context)
    handle = scope.span_begin("db")
    try:
        return execute(sql, params, many, context)
    finally:
        scope.span_end("db", handle)


def _wrap_cache_method(fn: Callable) -> Callable:
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        scope = _current.get()
        if scope is None:
            return fn(*args, **kwargs)
        handle = scope.span_begin("cache")
        try:
            return fn(*args, **kwargs)
        finally:
            scope.span_end("cache", handle)

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
    """The route pattern of a ResolverMatch ("/users/<int:id>/"), else the view name."""
    if match is None:
        return "<unmatched>"
    if match.route:
        return "/" + match.route.lstrip("^")
    return match.view_name or "<unnamed>"


def endpoint_of(request) -> str:
    return _endpoint_of_match(getattr(request, "resolver_match", None))


class CpuLedgerMiddleware:
    """Samples requests (rate from settings.CPULEDGER) and records their bill."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response):
        self.get_response = get_response
        raw = getattr(settings, "CPULEDGER", None)
        if raw is None:
            raise ImproperlyConfigured("cpuledger: add a CPULEDGER dict to your settings (SERVER_URL at least)")
        default_service = (getattr(settings, "SETTINGS_MODULE", "") or "django").split(".")[0]
        try:
            config = build_config(raw, default_service=default_service, source="settings.CPULEDGER",
                                  cwd=str(getattr(settings, "BASE_DIR", "") or "") or None)
        except ConfigError as e:
            raise ImproperlyConfigured(str(e)) from None
        if config.flags is None and "waffle" in getattr(settings, "INSTALLED_APPS", ()):
            config = config.__class__(**{**config.__dict__, "flags": _waffle_flags})
        self.rt = Runtime(config)
        self._header = "HTTP_" + config.request_id_header.upper().replace("-", "_")
        self._needs_early_resolve = bool(config.endpoint_sample_rates)
        if config.enabled:
            _instrument_caches()
            _instrument_databases()

    def __call__(self, request):
        rt = self.rt
        if rt.recorder is None:
            return self.get_response(request)
        try:
            request_id = request.META.get(self._header)
            endpoint = None
            if self._needs_early_resolve:
                endpoint = self._resolve_early(request)
            rate = rt.rate_for(endpoint)
            sampled = rt.decide(rate, request_id)
        except Exception as e:
            rt.error("sample", e)
            return self.get_response(request)
        if not sampled:
            response = self.get_response(request)
            try:
                rt.recorder.count(endpoint_of(request), rt.user_of(request, _default_user_key(request)), False)
            except Exception as e:
                rt.error("count", e)
            return response
        return self._sampled(request, request_id or "", rate)

    def _sampled(self, request, request_id: str, rate: float):
        rt = self.rt
        try:
            scope = _native.RequestScope()
            token = _current.set(scope)
        except Exception as e:
            rt.error("begin", e)
            return self.get_response(request)
        profiler = None
        try:
            profiler = rt.start_profile()
        except Exception as e:
            rt.error("profile", e)
        try:
            response = self.get_response(request)
        finally:
            try:
                profile = rt.finish_profile(profiler)
            except Exception as e:
                profile = None
                rt.error("profile", e)
            try:
                _current.reset(token)
            except Exception as e:
                rt.error("end", e)
        try:
            endpoint = endpoint_of(request)
            user = rt.user_of(request, _default_user_key(request))
            flags = rt.flags_of(request)
            rt.recorder.submit(scope, endpoint, request.method or "", int(response.status_code),
                               flags, user, rate, request_id, profile)
            rt.recorder.count(endpoint, user, True)
        except Exception as e:
            rt.error("submit", e)
        return response

    @staticmethod
    def _resolve_early(request) -> Optional[str]:
        from django.urls import Resolver404, resolve

        try:
            return _endpoint_of_match(resolve(request.path_info))
        except Resolver404:
            return "<unmatched>"
