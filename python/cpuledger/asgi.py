"""ASGI middleware (Starlette, FastAPI, Django's ASGI handler, any ASGI app).

    from cpuledger.asgi import CpuLedgerASGI
    app = CpuLedgerASGI(app, server_url="http://127.0.0.1:8750", sample_rate=0.01, service="api")

Many requests interleave on one event-loop thread, so a start-to-end reading
of the thread's counters would bill each request for its neighbours' work.
Instead the request's coroutine is metered step by step: the counters are
read around every resumption, and only those deltas are billed. Tasks the
request spawns (asyncio.create_task) inherit its scope through contextvars
and are metered the same way, through a task factory installed on the loop.
Work pushed to threads (run_in_executor, sync_to_async) runs on other
threads and is neither billed to the request nor in its profile (a sync
Django view under Django's ASGI handler is such work).

The endpoint is the matched route's path when the framework records it in
the scope (Starlette and FastAPI set scope["route"]; a StaticFiles mount is
"static", no match "<unmatched>"), else ``endpoint=callable(scope)``, else
"<unrouted>". It is known only after routing, so ENDPOINT_SAMPLE_RATES is
applied when the request ends (see _runtime).

PROFILE_RATE applies as under WSGI (the same draw from the request id). A
profiler follows a thread, and here one thread runs many requests at once,
so a profiled request's profiler is paused between its steps and attached
only while its own coroutine (or a task it spawned) runs: the profile holds
the request's frames and no event-loop frame, nor another request's. The
app's coroutine is a top-level call, as the app call is under WSGI; a
spawned task's coroutine is one too (its steps are driven by the event
loop, not by its creator). Every resume of a coroutine counts as a call, as
cProfile counts them on 3.11. An apportioned profile shares out the bill of
the request's own steps over the ticks of those steps only.
"""

from __future__ import annotations

import asyncio
import contextvars
import types
from typing import Any, Callable, Optional

from cpuledger._config import app_name, from_kwargs
from cpuledger._runtime import Request, Runtime, profile_step, span, step

__all__ = ["CpuLedgerASGI", "span"]

# The sampled request being served in this context: tasks it spawns inherit
# it (contextvars), and the task factory meters and profiles them as its own.
_current_request: contextvars.ContextVar[Optional[Request]] = contextvars.ContextVar("cpuledger_request",
                                                                                     default=None)


@types.coroutine
def _metered(coro, req: Request):
    """Drive `coro`, billing each of its steps to the request's scope and
    profiling them in its profile (when it has one)."""
    scope = req.scope
    send_value, throw_value = None, None
    while True:
        scope = step(scope, True)
        try:
            if throw_value is not None:
                exc, throw_value = throw_value, None
                yielded = profile_step(req, coro.throw, exc)
            else:
                yielded = profile_step(req, coro.send, send_value)
        except StopIteration as stop:
            return stop.value
        finally:
            scope = step(scope, False)
        try:
            send_value = yield yielded
        except BaseException as e:  # noqa: B036 - forwarded into the coroutine
            throw_value = e


async def _metered_task(coro, req: Request):
    """_metered() as a native coroutine: asyncio.Task takes no generator-based
    coroutine since CPython 3.12."""
    return await _metered(coro, req)


def _install_task_factory(loop: asyncio.AbstractEventLoop) -> None:
    """Meter tasks spawned while a sampled request is current. Chains to any
    factory already installed; installed once per loop."""
    previous = loop.get_task_factory()
    if getattr(previous, "__cpuledger__", False):
        return

    def factory(loop, coro, **kwargs):
        req = _current_request.get()
        if req is not None and req.scope is not None and asyncio.iscoroutine(coro):
            coro = _metered_task(coro, req)
        if previous is not None:
            return previous(loop, coro, **kwargs)
        return asyncio.Task(coro, loop=loop, **kwargs)

    factory.__cpuledger__ = True
    loop.set_task_factory(factory)


def _route_of(scope: dict) -> Optional[str]:
    """Starlette's (and FastAPI's) matched route: its path; "static" for a
    StaticFiles mount; "<unmatched>" when the router ran and matched nothing."""
    route = scope.get("route")
    if route is None:
        return "<unmatched>" if "router" in scope else None
    if any(c.__name__ == "StaticFiles" for c in type(getattr(route, "app", None)).__mro__):
        return "static"  # by name: this module imports no framework
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else None


def _request_id(scope: dict, header: bytes) -> str:
    for k, v in scope.get("headers") or ():
        if k == header:
            return v.decode("latin-1")
    return ""


class CpuLedgerASGI:
    def __init__(self, app, *, endpoint: Optional[Callable[[dict], Optional[str]]] = None, **settings: Any):
        self.app = app
        self.endpoint_fn = endpoint
        self.rt = Runtime(from_kwargs(settings, default_service=app_name(app), source="CpuLedgerASGI(...)"))
        self._header = self.rt.config.request_id_header.lower().encode("latin-1")

    def _endpoint(self, scope: dict) -> str:
        ep = _route_of(scope)
        if ep is None and self.endpoint_fn is not None:
            ep = self.endpoint_fn(scope)
        return ep or "<unrouted>"

    async def __call__(self, scope, receive, send):
        if scope.get("type") != "http" or not self.rt.recording:
            return await self.app(scope, receive, send)
        req = self._begin(scope)
        if req is None:
            return await self.app(scope, receive, send)
        status = [500]  # if the app fails before it answers

        async def send_wrapper(message):
            if message.get("type") == "http.response.start":
                status[0] = _status(message)
            await send(message)

        app = self.app(scope, receive, send_wrapper)
        token = self._enter(req)
        try:
            await (app if req.scope is None else _metered(app, req))
        finally:
            self._exit(token)
            self.rt.leave(req)
            self.rt.finish(req, scope, lambda: self._endpoint(scope), scope.get("method", ""), status[0])

    def _begin(self, scope: dict):
        try:
            _install_task_factory(asyncio.get_running_loop())
            request_id = _request_id(scope, self._header)
        except Exception as e:
            self.rt.error("begin", e)
            return None
        # Suspended: billed (and profiled) step by step, only while this
        # request's coroutine runs.
        return self.rt.begin(request_id, suspended=True)

    def _enter(self, req: Request) -> Optional[contextvars.Token]:
        if req.scope is None:
            return None
        try:
            return _current_request.set(req)
        except Exception as e:
            self.rt.error("begin", e)
            return None

    def _exit(self, token: Optional[contextvars.Token]) -> None:
        if token is None:
            return
        try:
            _current_request.reset(token)
        except Exception as e:  # reset in another context than set: leave it
            self.rt.error("leave", e)


def _status(message: dict) -> int:
    try:
        return int(message.get("status", 0))
    except (TypeError, ValueError):
        return 0
