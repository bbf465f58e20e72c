"""What every console screen answers with besides its pages: the refusal of a request without
its CSRF token, and a blocking API call run off the event loop."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response


def forbidden() -> Response:
    """A state-changing request without its session's CSRF token (a forgery, or a stale page)."""
    return Response("forbidden: CSRF token missing or wrong", status_code=403)


async def in_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """A blocking gRPC call off the event loop: nothing blocks while a device works."""
    return await run_in_threadpool(fn, *args, **kwargs)
