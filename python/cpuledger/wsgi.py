"""WSGI middleware for any WSGI app (Flask, Falcon, Bottle, a bare callable).

    from cpuledger.wsgi import CpuLedgerWSGI
    app.wsgi_app = CpuLedgerWSGI(app.wsgi_app, server_url="http://127.0.0.1:8750",
                                 sample_rate=0.01, service="shop")

Takes the settings of the Django middleware as lower-case keyword arguments.
The endpoint is ``environ["cpuledger.endpoint"]`` when the app sets it, else
what ``endpoint=callable(environ)`` returns, else "<unrouted>" — never the raw
path. For a Flask app, ``CpuLedgerWSGI.for_flask(app, ...)`` wires it in and
fills the endpoint from the matched URL rule ("static" for Flask's static
files, "<unmatched>" when no rule matched).

The endpoint is known only after the app has routed the request, so
ENDPOINT_SAMPLE_RATES is applied when the request ends (see _runtime). A
profile covers the app call; a streamed body's iteration is billed but not
profiled.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Optional

from cpuledger._config import app_name, from_kwargs
from cpuledger._runtime import Request, Runtime, environ_key, span, step

__all__ = ["CpuLedgerWSGI", "span"]

ENDPOINT_KEY = "cpuledger.endpoint"


class _Body:
    """The app's response iterable, metered until the server closes it
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
        self._scope = step(self._scope, True)
        try:
            return next(self._it)
        finally:
            self._scope = step(self._scope, False)

    def close(self):
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                self._scope = step(self._scope, True)
                try:
                    close()
                finally:
                    self._scope = step(self._scope, False)
        finally:
            self._finish()


def _flask_endpoint(request) -> str:
    rule = request.url_rule
    if rule is None:
        return "<unmatched>"
    static = rule.endpoint == "static" or rule.endpoint.endswith(".static")  # the app's or a blueprint's
    return "static" if static else rule.rule


class CpuLedgerWSGI:
    def __init__(self, app, *, endpoint: Optional[Callable[[dict], Optional[str]]] = None, **settings: Any):
        self.app = app
        self.endpoint_fn = endpoint
        self.rt = Runtime(from_kwargs(settings, default_service=app_name(app), source="CpuLedgerWSGI(...)"))
        self._header = environ_key(self.rt.config.request_id_header)

    @classmethod
    def for_flask(cls, flask_app, **settings: Any) -> "CpuLedgerWSGI":
        """Wrap `flask_app.wsgi_app` and record Flask's URL rule as the endpoint."""
        def remember_rule():
            from flask import request  # only ever runs inside Flask

            request.environ[ENDPOINT_KEY] = _flask_endpoint(request)

        # First, so that a before_request hook that answers early still names the endpoint.
        flask_app.before_request_funcs.setdefault(None, []).insert(0, remember_rule)
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
        if not rt.recording:
            return self.app(environ, start_response)
        req = rt.begin(environ.get(self._header) or "")
        status = [0]

        def capture(status_line, headers, exc_info=None):
            try:
                status[0] = int(str(status_line).split(" ", 1)[0])
            except ValueError:
                pass
            return start_response(status_line, headers, exc_info) if exc_info else start_response(status_line,
                                                                                                   headers)

        try:
            body = self.app(environ, capture)
        except BaseException:
            rt.leave(req)
            self._end(req, environ, 500)
            raise
        rt.leave(req)
        if req is None:
            return body
        if req.scope is None:  # nothing metered: count now, leave the body alone
            self._end(req, environ, status[0])
            return body
        # Paused until the server iterates the body, then metered chunk by chunk.
        return _Body(body, lambda: self._end(req, environ, status[0]), step(req.scope, False))

    def _end(self, req: Optional[Request], environ, status: int) -> None:
        self.rt.finish(req, environ, lambda: self._endpoint(environ), environ.get("REQUEST_METHOD", ""), status)
