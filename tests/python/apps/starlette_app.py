"""An ASGI app for the async attribution test: /heavy burns CPU in many
small steps, /light mostly waits; both interleave on one event loop."""

import asyncio
import os

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from cpuledger.asgi import CpuLedgerASGI


def burn(n: int) -> int:
    t = 0
    for i in range(n):
        t += i * i % 7
    return t


_heavy_in_flight = 0  # so that /light can tell whether it really ran beside /heavy


async def heavy(request):
    global _heavy_in_flight
    total = 0
    _heavy_in_flight += 1
    try:
        for _ in range(int(request.query_params.get("steps", "40"))):
            total += burn(60000)
            await asyncio.sleep(0)  # let the light request run in between
    finally:
        _heavy_in_flight -= 1
    return JSONResponse({"total": total})


async def light(request):
    # Waits while /heavy works, in many tiny steps of its own.
    saw_heavy = False
    for _ in range(int(request.query_params.get("steps", "40"))):
        saw_heavy = saw_heavy or _heavy_in_flight > 0
        await asyncio.sleep(0.005)
    return JSONResponse({"ok": True, "saw_heavy": saw_heavy})


async def spawn(request):
    # CPU work in a child task: billed to this request through the task factory.
    child = asyncio.create_task(_child_work())
    return JSONResponse({"total": await child})


async def _child_work():
    total = 0
    for _ in range(10):
        total += burn(20000)
        await asyncio.sleep(0)
    return total


async def items(request):
    return JSONResponse({"id": request.path_params["item_id"]})


routes = [
    Route("/heavy", heavy),
    Route("/light", light),
    Route("/spawn", spawn),
    Route("/items/{item_id:int}", items),
]
inner = Starlette(routes=routes)
app = CpuLedgerASGI(
    inner,
    enabled=True,  # record, though started by a test
    server_url=os.environ["CPULEDGER_SERVER_URL"],
    sample_rate=float(os.environ.get("CPULEDGER_SAMPLE_RATE", "1.0")),
    service="async-api",
    commit=os.environ.get("CPULEDGER_COMMIT", "async1"),
    batch_max_delay_ms=200,
)
