"""gRPC errors with a machine-readable reason (google.rpc.ErrorInfo via grpcio-status).

Servers call `abort_with(context, code, reason, message)`; the client sees the status code, the
human message, and in the `grpc-status-details-bin` trailer a google.rpc.Status whose details
hold one google.rpc.ErrorInfo (reason, domain "cardstation.v1", metadata). Clients and tests read
it back with `error_info(rpc_error)` (in cardstation.protos.errors: a client needs nothing of
the server).

Reasons are UPPER_SNAKE strings, e.g. "UNAUTHENTICATED", "TOKEN_EXPIRED", "TOKEN_INVALID",
"ROLE_NOT_ALLOWED", "TLS_REQUIRED". Never put secrets (tokens, full ID numbers) in the message
or the metadata: both travel to the client and may be logged there.
"""

from __future__ import annotations

import contextvars
from typing import Any, NoReturn

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from cardstation.protos.cardstation.v1 import issuance_pb2 as _issuance_pb2
from cardstation.protos.errors import error_info  # the clients' half, re-exported

DOMAIN = "cardstation.v1"

# The package name the protos declare, used to tell our methods from health/reflection.
PACKAGE = _issuance_pb2.DESCRIPTOR.package

ErrorInfo = error_details_pb2.ErrorInfo


def build_status(
    code: grpc.StatusCode,
    reason: str,
    message: str,
    metadata: dict[str, str] | None = None,
) -> grpc.Status:
    """The grpc.Status (with an ErrorInfo detail) that `abort_with` sends."""
    info = error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN)
    for key, value in (metadata or {}).items():
        info.metadata[str(key)] = str(value)
    status = status_pb2.Status(code=code.value[0], message=message)
    status.details.add().Pack(info)
    return rpc_status.to_status(status)


def abort_with(
    context: grpc.ServicerContext,
    code: grpc.StatusCode,
    reason: str,
    message: str,
    metadata: dict[str, str] | None = None,
) -> NoReturn:
    """End the call with `code`, `message` and an ErrorInfo(reason, DOMAIN, metadata).

    Raises (as grpc's `abort_with_status` does) so the servicer stops here. A synchronous
    handler under the asyncio server has a context without `abort_with_status`: the status
    goes as the code, details and trailers of `abort`, which carry the same to the client.
    """
    status = build_status(code, reason, message, metadata)
    ABORTED_WITH.set(code.name)  # for the audit record: that context cannot say its code
    if hasattr(context, "abort_with_status"):
        context.abort_with_status(status)
    else:
        context.abort(status.code, status.details, status.trailing_metadata)
    # abort always raises; this keeps type checkers and NoReturn honest.
    raise RuntimeError("abort returned")  # pragma: no cover


async def abort_async(context: Any, code: grpc.StatusCode, reason: str, message: str,
                      metadata: dict[str, str] | None = None) -> NoReturn:
    """`abort_with` for a coroutine handler of the asyncio server (its abort is awaited)."""
    status = build_status(code, reason, message, metadata)
    await context.abort(status.code, status.details, status.trailing_metadata)
    raise RuntimeError("abort returned")  # pragma: no cover


#: The status name the last `abort_with` of this call ended it with ("" if none).
ABORTED_WITH: contextvars.ContextVar[str] = contextvars.ContextVar("aborted_with", default="")



__all__ = ["ABORTED_WITH", "DOMAIN", "PACKAGE", "ErrorInfo", "abort_async", "abort_with",
           "build_status", "error_info"]
