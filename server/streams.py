"""Watch streams: a cap of their own, and one station message per change shared by all.

- `StreamGate`: at most `limit` watch streams at once. One more is refused at once
  (RESOURCE_EXHAUSTED, `STREAMS_EXHAUSTED`): a console or upstream client that leaks streams
  cannot take what unary calls and the health check need.
- `LoopSignal`: told from any thread that something changed; coroutines on the server's
  event loop wait for it (one future per change, shared by every waiter: a change wakes them
  all in one pass of the loop, nothing polls).
- `StationBroadcast`: the station picture is built once per change, on one thread, and every
  WatchStation stream is handed that same message.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

import grpc

from .errors import abort_async

log = logging.getLogger(__name__)

#: Watch streams (WatchStation, WatchIssuance, WatchPinEntry) a server holds at once.
DEFAULT_MAX_STREAMS = 5000
#: How often the picture is built again with no change reported (its clock-driven figures,
#: such as the age of the oldest pending return, move on).
REBUILD_S = 1.0


class StreamGate:
    """Counts the open watch streams; `enter()` False when the cap is reached."""

    def __init__(self, limit: int = DEFAULT_MAX_STREAMS) -> None:
        self.limit = limit
        self._open = 0
        self._lock = threading.Lock()

    @property
    def open(self) -> int:
        return self._open

    def enter(self) -> bool:
        with self._lock:
            if self._open >= self.limit:
                return False
            self._open += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self._open = max(0, self._open - 1)


async def enter_stream(streams: StreamGate, context: Any) -> None:
    """Take one of the server's watch streams (`streams.leave()` when it ends), or refuse
    the call (RESOURCE_EXHAUSTED) when all are taken."""
    if streams.enter():
        return
    cause = f"the station already holds {streams.limit} watch streams"
    remedy = "close the watch streams you do not need (a console needs one or two), then " \
        "watch again"
    await abort_async(context, grpc.StatusCode.RESOURCE_EXHAUSTED, "STREAMS_EXHAUSTED",
                      f"{cause} — {remedy}", {"cause": cause, "remedy": remedy})


class LoopSignal:
    """A change told from any thread (`notify`), awaited on the loop (`wait`)."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self._future: asyncio.Future[None] | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def notify(self) -> None:
        loop = self.loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._resolve)
            except RuntimeError:  # the loop closed meanwhile: nobody waits any more
                pass

    def _resolve(self) -> None:
        future, self._future = self._future, None
        if future is not None and not future.done():
            future.set_result(None)

    async def wait(self) -> None:
        """Until the next change (on the loop only). No timer: an idle watcher costs nothing;
        a call that ends cancels its waiter, and the server's stop is a change too."""
        loop = asyncio.get_running_loop()
        if self.loop is None:
            self.loop = loop  # the first waiter's loop, when bind() was not called
        if self._future is None:
            self._future = loop.create_future()
        await asyncio.shield(self._future)


class StationBroadcast:
    """The latest WatchStation message and its version, built by one thread when the station
    changes (`changed()`) and every REBUILD_S; watchers await `signal` for a newer one."""

    def __init__(self, build: Callable[[], Any], rebuild_s: float = REBUILD_S,
                 stopping: threading.Event | None = None) -> None:
        self._build = build
        self.rebuild_s = rebuild_s
        # set when the server begins to stop: the thread ends, every watcher is woken
        self.stopping = stopping or threading.Event()
        self.signal = LoopSignal()
        self._lock = threading.Lock()
        self._dirty = threading.Event()
        self.version = 0
        self.message: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> StationBroadcast:
        self._publish()
        self._thread = threading.Thread(target=self._run, name="station-broadcast",
                                        daemon=True)
        self._thread.start()
        return self

    def changed(self) -> None:
        """Something in the station picture may have changed: build it again soon."""
        self._dirty.set()

    def current(self) -> tuple[int, Any]:
        with self._lock:
            return self.version, self.message

    def _run(self) -> None:
        while not self.stopping.is_set():
            self._dirty.wait(self.rebuild_s)
            self._dirty.clear()
            if self.stopping.is_set():
                break
            try:
                self._publish()
            except Exception:  # a failed build keeps the last picture; the next one retries
                log.exception("the station picture could not be built")
        self.signal.notify()  # the watchers see the server stopping

    def _publish(self) -> None:
        message = self._build()
        with self._lock:
            if message == self.message:
                return
            self.message = message
            self.version += 1
        self.signal.notify()
