"""The parity app on Starlette (ASGI), behind CpuLedgerASGI."""

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


routes = [
    Route("/", root),
    Route("/items/{id:int}", item),
    Route("/boom", boom),
    Route("/work", work),
    Mount("/static", StaticFiles(directory=os.path.join(os.path.dirname(__file__), "static"))),
]
app = CpuLedgerASGI(Starlette(routes=routes), **parity_common.kwargs())
