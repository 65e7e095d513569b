"""The parity app on Starlette (ASGI), behind CpuLedgerASGI.

/pair/slow and /pair/other (ASGI only) are two requests made to interleave on
the one event loop: slow computes, awaits, and waits for other to have run
before it computes again (in a task it spawns); other waits for slow to
have begun. Requests with
the same ?pair= meet whatever order they arrive in."""

import asyncio
import os

import parity_common
from starlette.applications import Starlette
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from cpuledger.asgi import CpuLedgerASGI

parity_common.maybe_break()


async def root(request):
    return RedirectResponse("/items/1", status_code=302)


async def item(request):
    return JSONResponse({"id": request.path_params["id"]})


async def boom(request):
    raise RuntimeError("boom")


async def work(request):
    return JSONResponse(parity_common.work())


_pairs: dict = {}


def _pair(request):
    """(slow has begun, other is done) for this request's ?pair=."""
    return _pairs.setdefault(request.query_params.get("pair", ""), (asyncio.Event(), asyncio.Event()))


def parity_slow_before(n: int) -> int:
    return sum(sorted(i * 3 % 11 for i in range(n)))


def parity_slow_after(n: int) -> int:
    return sum(sorted(i * 5 % 13 for i in range(n)))


def parity_other_work(n: int) -> int:
    return sum(sorted(i * 7 % 17 for i in range(n)))


async def parity_slow_task(n: int) -> int:
    """Spawned by slow as a task of its own: the event loop steps it."""
    await asyncio.sleep(0)
    return parity_slow_after(n)


async def slow(request):
    begun, other_done = _pair(request)
    total = parity_slow_before(5000)
    begun.set()
    await asyncio.sleep(0)
    await other_done.wait()  # other runs on this loop while slow is suspended
    return JSONResponse({"total": total + await asyncio.create_task(parity_slow_task(5000))})


async def other(request):
    begun, other_done = _pair(request)
    await begun.wait()
    total = parity_other_work(5000)
    other_done.set()
    return JSONResponse({"total": total})


routes = [
    Route("/", root),
    Route("/pair/slow", slow),
    Route("/pair/other", other),
    Route("/items/{id:int}", item),
    Route("/boom", boom),
    Route("/work", work),
    Mount("/static", StaticFiles(directory=os.path.join(os.path.dirname(__file__), "static"))),
]
app = CpuLedgerASGI(Starlette(routes=routes), **parity_common.kwargs())
