"""WSGI middleware for any WSGI app (Flask, Falcon, Bottle, a bare callable).

    from cpuledger.wsgi import CpuLedgerWSGI
    app.wsgi_app = CpuLedgerWSGI(app.wsgi_app, server_url="http://127.0.0.1:8750",
                                 sample_rate=0.01, service="shop")

Takes the settings of the Django middleware as lower-case keyword arguments.
The endpoint is ``environ["cpuledger.endpoint"]`` when the app sets it, else
what ``endpoint=callable(environ)`` returns, else "<unrouted>" — never the raw
path. For a Flask app, ``CpuLedgerWSGI.for_flask(app, ...)`` wires it in and
fills the endpoint from the matched URL rule.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Optional

from cpuledger import _native
from cpuledger._config import from_kwargs
from cpuledger._runtime import Runtime, current_scope, span

__all__ = ["CpuLedgerWSGI", "span"]

ENDPOINT_KEY = "cpuledger.endpoint"


class _Body:
    """The app's response iterable, measured until the server closes it
    (a streaming body's CPU belongs to the request)."""

    def __init__(self, body: Iterable[bytes], finish: Callable[[], None], scope):
        self._body = body
        self._finish = finish
        self._scope = scope
        self._it = None

    def __iter__(self):
        self._it = iter(self._body)
        return self

    def __next__(self):
        self._scope.resume()
        try:
            return next(self._it)
        finally:
            self._scope.suspend()

    def close(self):
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                self._scope.resume()
                try:
                    close()
                finally:
                    self._scope.suspend()
        finally:
            self._finish()


class CpuLedgerWSGI:
    def __init__(self, app, *, endpoint: Optional[Callable[[dict], Optional[str]]] = None, **settings: Any):
        self.app = app
        self.endpoint_fn = endpoint
        name = getattr(app, "__name__", None) or type(app).__name__
        self.rt = Runtime(from_kwargs(settings, default_service=name, source="CpuLedgerWSGI(...)"))
        header = self.rt.config.request_id_header
        self._header = "HTTP_" + header.upper().replace("-", "_")

    @classmethod
    def for_flask(cls, flask_app, **settings: Any) -> "CpuLedgerWSGI":
        """Wrap `flask_app.wsgi_app` and record Flask's URL rule as the endpoint."""
        def remember_rule():
            from flask import request  # only ever runs inside Flask

            if request.url_rule is not None:
                request.environ[ENDPOINT_KEY] = request.url_rule.rule

        flask_app.before_request(remember_rule)
        wrapped = cls(flask_app.wsgi_app, **settings)
        flask_app.wsgi_app = wrapped
        return wrapped

    def _endpoint(self, environ) -> str:
        ep = environ.get(ENDPOINT_KEY)
        if ep is None and self.endpoint_fn is not None:
            ep = self.endpoint_fn(environ)
        return ep or "<unrouted>"

    def __call__(self, environ, start_response):
        rt = self.rt
        if rt.recorder is None:
            return self.app(environ, start_response)
        try:
            request_id = environ.get(self._header) or ""
            rate = rt.config.sample_rate
            sampled = rt.decide(rate, request_id)
        except Exception as e:
            rt.error("sample", e)
            return self.app(environ, start_response)
        if not sampled:
            body = self.app(environ, start_response)
            try:
                rt.recorder.count(self._endpoint(environ), rt.user_of(environ, None), False)
            except Exception as e:
                rt.error("count", e)
            return body

        status_holder = [0]

        def capture(status, headers, exc_info=None):
            try:
                status_holder[0] = int(str(status).split(" ", 1)[0])
            except ValueError:
                pass
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        scope = _native.RequestScope()
        token = current_scope.set(scope)
        try:
            body = self.app(environ, capture)
        except BaseException:
            scope.suspend()
            current_scope.reset(token)
            self._finish(environ, scope, 500, rate, request_id)
            raise
        scope.suspend()
        current_scope.reset(token)
        return _Body(body, lambda: self._finish(environ, scope, status_holder[0], rate, request_id), scope)

    def _finish(self, environ, scope, status: int, rate: float, request_id: str) -> None:
        rt = self.rt
        try:
            endpoint = self._endpoint(environ)
            user = rt.user_of(environ, None)
            rt.recorder.submit(scope, endpoint, environ.get("REQUEST_METHOD", ""), status,
                               rt.flags_of(environ), user, rate, request_id)
            rt.recorder.count(endpoint, user, True)
        except Exception as e:
            rt.error("submit", e)
