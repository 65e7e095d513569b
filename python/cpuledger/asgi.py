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
threads and is not billed to the request.

The endpoint is the matched route's path when the framework records it in
the scope (Starlette and FastAPI set scope["route"]), else
``endpoint=callable(scope)``, else "<unrouted>".
"""

from __future__ import annotations

import asyncio
import types
from typing import Any, Callable, Optional

from cpuledger import _native
from cpuledger._config import from_kwargs
from cpuledger._runtime import Runtime, current_scope, span

__all__ = ["CpuLedgerASGI", "span"]


@types.coroutine
def _metered(coro, scope):
    """Drive `coro`, billing each of its steps to `scope`."""
    send_value, throw_value = None, None
    while True:
        scope.resume()
        try:
            if throw_value is not None:
                exc, throw_value = throw_value, None
                yielded = coro.throw(exc)
            else:
                yielded = coro.send(send_value)
        except StopIteration as stop:
            return stop.value
        finally:
            scope.suspend()
        try:
            send_value = yield yielded
        except BaseException as e:  # noqa: B036 - forwarded into the coroutine
            throw_value = e


def _install_task_factory(loop: asyncio.AbstractEventLoop) -> None:
    """Meter tasks spawned while a sampled request is current. Chains to any
    factory already installed; installed once per loop."""
    previous = loop.get_task_factory()
    if getattr(previous, "__cpuledger__", False):
        return

    def factory(loop, coro, **kwargs):
        scope = current_scope.get()
        if scope is not None and asyncio.iscoroutine(coro):
            coro = _metered(coro, scope)
        if previous is not None:
            return previous(loop, coro, **kwargs)
        return asyncio.Task(coro, loop=loop, **kwargs)

    factory.__cpuledger__ = True
    loop.set_task_factory(factory)


def _route_of(scope: dict) -> Optional[str]:
    route = scope.get("route")
    path = getattr(route, "path", None) if route is not None else None
    return path if isinstance(path, str) else None


class CpuLedgerASGI:
    def __init__(self, app, *, endpoint: Optional[Callable[[dict], Optional[str]]] = None, **settings: Any):
        self.app = app
        self.endpoint_fn = endpoint
        name = getattr(app, "title", None) or getattr(app, "__name__", None) or type(app).__name__
        self.rt = Runtime(from_kwargs(settings, default_service=str(name), source="CpuLedgerASGI(...)"))
        self._header = self.rt.config.request_id_header.lower().encode("latin-1")

    def _endpoint(self, scope: dict) -> str:
        ep = _route_of(scope)
        if ep is None and self.endpoint_fn is not None:
            ep = self.endpoint_fn(scope)
        return ep or "<unrouted>"

    async def __call__(self, scope, receive, send):
        rt = self.rt
        if scope.get("type") != "http" or rt.recorder is None:
            return await self.app(scope, receive, send)
        try:
            request_id = ""
            for k, v in scope.get("headers") or ():
                if k == self._header:
                    request_id = v.decode("latin-1")
                    break
            rate = rt.config.sample_rate
            sampled = rt.decide(rate, request_id)
        except Exception as e:
            rt.error("sample", e)
            return await self.app(scope, receive, send)
        if not sampled:
            await self.app(scope, receive, send)
            try:
                rt.recorder.count(self._endpoint(scope), rt.user_of(scope, None), False)
            except Exception as e:
                rt.error("count", e)
            return None
        return await self._sampled(scope, receive, send, rate, request_id)

    async def _sampled(self, scope, receive, send, rate, request_id):
        rt = self.rt
        status = [500]

        async def send_wrapper(message):
            if message.get("type") == "http.response.start":
                status[0] = int(message.get("status", 0))
            await send(message)

        try:
            _install_task_factory(asyncio.get_running_loop())
            req_scope = _native.RequestScope()
            req_scope.suspend()  # billed step by step from here on
        except Exception as e:
            rt.error("begin", e)
            return await self.app(scope, receive, send)
        token = current_scope.set(req_scope)
        try:
            await _metered(self.app(scope, receive, send_wrapper), req_scope)
        finally:
            current_scope.reset(token)
            try:
                endpoint = self._endpoint(scope)
                user = rt.user_of(scope, None)
                rt.recorder.submit(req_scope, endpoint, scope.get("method", ""), status[0],
                                   rt.flags_of(scope), user, rate, request_id)
                rt.recorder.count(endpoint, user, True)
            except Exception as e:
                rt.error("submit", e)
