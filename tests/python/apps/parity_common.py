"""What the three parity apps share: the settings (JSON in $CPULEDGER_PARITY,
upper-case keys, so every framework gets the very same ones), the FLAGS and
USER_KEY hooks (read one header from a Django request, a WSGI environ or an
ASGI scope alike), the view bodies, and a way to make cpuledger fail.

$CPULEDGER_PARITY_BREAK=1 replaces the native recorder and request scope by
ones that raise on every call: the app must answer as if cpuledger were not
there."""

from __future__ import annotations

import json
import os

from cpuledger import _native, span


def settings() -> dict:
    return json.loads(os.environ["CPULEDGER_PARITY"])


def kwargs() -> dict:
    """The same settings as WSGI/ASGI keyword arguments."""
    return {k.lower(): v for k, v in settings().items()}


def header(request, name: str) -> str:
    """`name` ("X-Flag") from a Django request, a WSGI environ or an ASGI scope."""
    if isinstance(request, dict) and isinstance(request.get("headers"), (list, tuple)):
        want = name.lower().encode("latin-1")
        return next((v.decode("latin-1") for k, v in request["headers"] if k == want), "")
    meta = getattr(request, "META", request)
    return meta.get("HTTP_" + name.upper().replace("-", "_"), "")


def flags(request) -> dict:
    return {"checkout": header(request, "X-Flag") or "off"}


def user_key(request):
    return header(request, "X-User") or None


def parity_hot_function(n: int) -> int:
    """The function the profile tests look for."""
    return sum(sorted(i * i % 7 for i in range(n)))


def work() -> dict:
    with span("db"):  # one db span per request, on every framework
        total = parity_hot_function(20000)
    return {"total": total, "counter_source": _native.thread_counter_source()}


class _Broken:
    def __init__(self, *args, **kwargs):
        pass

    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise RuntimeError(f"cpuledger made to fail: {name}")

        return fail


def maybe_break() -> None:
    if os.environ.get("CPULEDGER_PARITY_BREAK"):
        _native.Recorder = _Broken
        _native.RequestScope = _Broken
