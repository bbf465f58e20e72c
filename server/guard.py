"""The request guard: every cardstation.v1 request is read and checked against `limits` before
its servicer runs.

- Bytes that do not parse as the method's request message (bad protobuf, a string that is not
  UTF-8) are the caller's error, INVALID_ARGUMENT `MALFORMED_REQUEST`, not grpc's INTERNAL
  "Exception deserializing request!": the guard reads the request itself.
- Every field is bounded (`limits.FIELD_LIMITS`), every enum is one of its values, every
  number is a number; the first violation ends the call with INVALID_ARGUMENT naming the field.
- A photo is refused from its header when decoding it would cost more than the limits allow.

It is the innermost interceptor, so a caller is authenticated (and audited) before it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from . import limits
from .errors import PACKAGE, abort_with

_REMEDY = "correct the request (the field and its limit are named)"


@dataclass(frozen=True)
class Violation:
    reason: str
    field: str
    cause: str


@dataclass(frozen=True)
class _Malformed:
    """What the tolerant deserializer hands on when the bytes are not the request."""

    error: str


def _size_violation(path: str, limit: limits.FieldLimit, size: int, unit: str) -> Violation:
    what = f" ({limit.what})" if limit.what else ""
    amount = f"has {size:,} {unit}" if unit == "entries" else f"is {size:,} {unit} long"
    return Violation(limit.reason, path, f"{path} {amount}, at most {limit.most:,}{what}")


def _enum_violation(field: FieldDescriptor, path: str, value: int) -> Violation | None:
    if value in field.enum_type.values_by_number:
        return None
    return Violation(limits.ENUM_REASONS.get(field.name, "FIELD_INVALID"), path,
                     f"{path} {value} is not one of the {field.enum_type.name} values")


def _scalar_violation(field: FieldDescriptor, path: str, value: Any) -> Violation | None:
    limit = limits.FIELD_LIMITS.get(field.name, limits.DEFAULT_LIMIT)
    if field.type == FieldDescriptor.TYPE_STRING and len(value) > limit.most:
        return _size_violation(path, limit, len(value), "characters")
    if field.type == FieldDescriptor.TYPE_BYTES:
        if len(value) > limit.most:
            return _size_violation(path, limit, len(value), "bytes")
        if field.name == "photo_jpeg":
            problem = limits.photo_problem(value)
            if problem is not None:
                return Violation("PHOTO_TOO_LARGE", path, f"{path} is not decoded: {problem}")
    if field.type == FieldDescriptor.TYPE_ENUM:
        return _enum_violation(field, path, value)
    if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT) \
            and math.isnan(value):
        return Violation("FIELD_INVALID", path, f"{path} is not a number")
    return None


def find_violation(message: Message, prefix: str = "") -> Violation | None:
    """The first field of `message` (nested messages included) that breaks a limit."""
    for field in message.DESCRIPTOR.fields:
        path = prefix + field.name
        value = getattr(message, field.name)
        if field.is_repeated:
            limit = limits.FIELD_LIMITS.get(field.name, limits.DEFAULT_LIMIT)
            if len(value) > limit.most:
                return _size_violation(path, limit, len(value), "entries")
            items = list(value)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            items = [value] if message.HasField(field.name) else []
        else:
            items = [value]
        for item in items:
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                found = find_violation(item, path + ".")
            else:
                found = _scalar_violation(field, path, item)
            if found is not None:
                return found
    return None


def _tolerant(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserialize is None:
        return None

    def read(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as exc:  # any parse failure of a caller's bytes is the caller's
            return _Malformed(type(exc).__name__)

    return read


def _refuse(context: grpc.ServicerContext, violation: Violation) -> None:
    abort_with(context, grpc.StatusCode.INVALID_ARGUMENT, violation.reason,
               f"{violation.cause} — {_REMEDY}",
               {"cause": violation.cause, "remedy": _REMEDY, "field": violation.field})


def check(request: Any, context: grpc.ServicerContext) -> None:
    """Abort the call when the request is malformed or breaks a limit."""
    if isinstance(request, _Malformed):
        _refuse(context, Violation("MALFORMED_REQUEST", "",
                                   f"the request is not a valid message ({request.error})"))
    if isinstance(request, Message):
        violation = find_violation(request)
        if violation is not None:
            _refuse(context, violation)


_Continuation = Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None]


class RequestGuard(grpc.ServerInterceptor):
    """Reads and checks the request of every cardstation.v1 method (see the module doc).

    The guarded handler of a method is built on its first call and reused: it depends on the
    method only, and building one per call was a measurable share of a small call."""

    def __init__(self) -> None:
        # Only methods with a handler are kept: bounded by the registered methods.
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}

    def intercept_service(self, continuation: _Continuation,
                          details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        cached = self._handlers.get(details.method)
        if cached is not None:
            return cached
        handler = continuation(details)
        if handler is None:
            return None
        guarded = _guard_handler(handler) if details.method.startswith(f"/{PACKAGE}.") \
            else handler
        self._handlers[details.method] = guarded
        return guarded


def _guard_handler(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    kwargs = {"request_deserializer": _tolerant(handler.request_deserializer),
              "response_serializer": handler.response_serializer}
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(_guarded(handler.unary_unary), **kwargs)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(_guarded(handler.unary_stream), **kwargs)
    return handler  # no cardstation method streams its requests


def _guarded(behavior: Callable[[Any, grpc.ServicerContext], Any],
             ) -> Callable[[Any, grpc.ServicerContext], Any]:
    def handler(request: Any, context: grpc.ServicerContext) -> Any:
        check(request, context)
        return behavior(request, context)

    return handler
