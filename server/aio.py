"""The gRPC server on an asyncio event loop (grpc.aio), in a thread of its own.

Watch streams are coroutines on the loop: a stream costs a coroutine and its call, not a
thread, so thousands are held in little memory and a change reaches them all in one pass of
the loop. Unary calls are the servicers' ordinary functions, run on a pool of worker threads
(grpc.aio's `migration_thread_pool`); the journal, the devices and the CMS are reached there,
never on the loop.

The authentication and request-guard interceptors are written for synchronous handlers
(auth.py, guard.py). `AioInterceptor` adapts one to the asyncio server: a synchronous handler
is wrapped by the interceptor itself (it runs on the worker pool with a synchronous context);
a coroutine stream handler is wrapped here, the interceptor's checks run against a stand-in
context whose abort is turned into the asyncio context's.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent import futures
from typing import Any

import grpc

from .auth.interceptor import _IDENTITY, AuthInterceptor, _status_name
from .auth.policy import is_open_method
from .guard import RequestGuard, _tolerant, check


class _Refused(Exception):
    """A check refused the call: the status to end it with."""

    def __init__(self, status: grpc.Status) -> None:
        super().__init__(status.details)
        self.status = status


class _CheckingContext:
    """What the interceptors' checks read of a call (peer, credentials, metadata), over an
    asyncio context; `abort_with_status` raises _Refused for the caller to await the abort."""

    def __init__(self, context: Any) -> None:
        self._context = context

    def peer(self) -> str:
        return str(self._context.peer())

    def auth_context(self) -> Any:
        return self._context.auth_context()

    def invocation_metadata(self) -> Any:
        return self._context.invocation_metadata()

    def abort_with_status(self, status: grpc.Status) -> None:
        raise _Refused(status)

    def code(self) -> Any:
        return None


async def _abort(context: Any, refused: _Refused) -> None:
    status = refused.status
    await context.abort(status.code, status.details, status.trailing_metadata)


async def checked(context: Any, step: Callable[..., Any], *args: Any,
                  in_thread: bool = False) -> Any:
    """Run a synchronous step of a coroutine handler (`step(context, *args)`, in a worker
    thread when it reads the journal) against a stand-in context: an abort it makes ends
    this call, as the servicers' synchronous helpers end theirs."""
    shim = _CheckingContext(context)
    try:
        if in_thread:
            return await asyncio.to_thread(step, shim, *args)
        return step(shim, *args)
    except _Refused as refused:
        await _abort(context, refused)


def _is_async(behavior: Any) -> bool:
    return inspect.isasyncgenfunction(behavior) or inspect.iscoroutinefunction(behavior)


_Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]]


class AioInterceptor(grpc.aio.ServerInterceptor):
    """One of the synchronous interceptors (AuthInterceptor, RequestGuard) for the asyncio
    server; the wrapped handler of each method is built once and kept."""

    def __init__(self, inner: AuthInterceptor | RequestGuard) -> None:
        self.inner = inner
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(self, continuation: _Continuation,
                                details: grpc.HandlerCallDetails,
                                ) -> grpc.RpcMethodHandler | None:
        method = details.method
        cached = self._handlers.get(method)
        if cached is not None:
            return cached
        handler = await continuation(details)
        if handler is None:
            return None
        if handler.unary_stream is not None and _is_async(handler.unary_stream):
            wrapped = self._wrap_async_stream(handler, method)
        else:  # a synchronous handler: the interceptor's own wrapper, on the worker pool
            wrapped = self.inner.intercept_service(lambda _details: handler, details)
        if wrapped is None:
            return None
        self._handlers[method] = wrapped
        return wrapped

    def _wrap_async_stream(self, handler: grpc.RpcMethodHandler,
                           method: str) -> grpc.RpcMethodHandler:
        behavior = handler.unary_stream
        if isinstance(self.inner, RequestGuard):
            guarded = _guarded_stream(behavior)
            return grpc.unary_stream_rpc_method_handler(
                guarded, request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer)
        auth = self.inner
        if is_open_method(method):
            return handler
        authed = _authenticated_stream(auth, auth.policy(method), behavior)
        return grpc.unary_stream_rpc_method_handler(
            authed, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)


def _guarded_stream(behavior: Any) -> Callable[[Any, Any], AsyncIterator[Any]]:
    async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
        try:
            check(request, _CheckingContext(context))
        except _Refused as refused:
            await _abort(context, refused)
        async for item in behavior(request, context):
            yield item

    return stream


def _authenticated_stream(auth: AuthInterceptor, policy: Any,
                          behavior: Any) -> Callable[[Any, Any], AsyncIterator[Any]]:
    async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
        try:
            identity = auth._admit(policy, request, _CheckingContext(context))
        except _Refused as refused:
            await _abort(context, refused)
        _IDENTITY.set(identity)  # this call's task has a context of its own
        error: BaseException | None = None
        last = None
        try:
            async for item in behavior(request, context):
                last = item
                yield item
        except BaseException as exc:
            error = exc
            raise
        finally:
            auth._record(identity, policy, request, last, _status_name(context, error))

    return stream


class AioServer:
    """A grpc.aio server run on an event loop in its own thread, driven from threads: the
    calls the synchronous server had (add_*_port, start, stop(grace).wait())."""

    def __init__(self, unary_workers: int, interceptors: list[Any],
                 options: list[tuple[str, Any]]) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="grpc-loop", daemon=True)
        self._thread.start()
        self.pool = futures.ThreadPoolExecutor(max_workers=unary_workers,
                                               thread_name_prefix="grpc")

        async def make() -> grpc.aio.Server:
            return grpc.aio.server(migration_thread_pool=self.pool,
                                   interceptors=interceptors, options=options)

        self.server: grpc.aio.Server = self.call(make())

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coroutine: Awaitable[Any]) -> Any:
        """Run `coroutine` on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()  # type: ignore[arg-type]

    def add_insecure_port(self, address: str) -> int:
        return int(self.server.add_insecure_port(address))

    def add_secure_port(self, address: str, credentials: grpc.ServerCredentials) -> int:
        return int(self.server.add_secure_port(address, credentials))

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self.server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(self, service: str, handlers: Any) -> None:
        self.server.add_registered_method_handlers(service, handlers)

    def start(self) -> None:
        self.call(self.server.start())

    def stop(self, grace: float | None) -> _Stopped:
        """Stop serving (calls in progress get `grace` seconds); `.wait()` until done."""
        done = asyncio.run_coroutine_threadsafe(self.server.stop(grace), self.loop)
        return _Stopped(self, done)

    def _close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.pool.shutdown(wait=False, cancel_futures=True)


class _Stopped:
    def __init__(self, server: AioServer, done: Any) -> None:
        self._server, self._done = server, done

    def wait(self, timeout: float | None = None) -> bool:
        try:
            self._done.result(timeout)
        finally:
            self._server._close()
        return True
