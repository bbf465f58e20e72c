"""The gRPC interceptor: who is calling (per call), may they call this method, and the audit
record of the calls that change state.

Callers are identified, in this order, by

1. `authorization: Bearer <token>` metadata, checked against a `TokenStore` (tokens.py);
2. the verified mTLS client certificate: its common name (then each subject alternative name)
   looked up in `client_roles` (CN -> Role); kept per certificate name set;
3. only when the interceptor is built with `simulate_loopback=True` — which `cardstation serve
   --simulate` does, and only on a 127.0.0.1 / ::1 listen address (see `server.tls`) — a
   built-in admin identity "loopback" for callers whose peer address is loopback (a peer's
   answer is cached).

No identity -> UNAUTHENTICATED (reason UNAUTHENTICATED, TOKEN_INVALID, TOKEN_EXPIRED or
CLIENT_CERT_UNKNOWN). A role that may not call the method (policy.py) -> PERMISSION_DENIED
(reason ROLE_NOT_ALLOWED, metadata method and role).

Servicers read the caller with `current_identity()`. Calls to `STATE_CHANGING` methods are
written to the `AuditLog` after they finish (also when they fail or are denied).
"""

from __future__ import annotations

import contextvars
import functools
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import grpc

from cardstation.server.audit import AuditLog
from cardstation.server.auth.identity import LOOPBACK_IDENTITY, AuthError, Identity, Role
from cardstation.server.auth.policy import (
    METHOD_ROLES,
    STATE_CHANGING,
    MethodPolicy,
    is_open_method,
    resolve_policy,
)
from cardstation.server.auth.tokens import TokenStore
from cardstation.server.errors import ABORTED_WITH, abort_with
from cardstation.server.tls import is_loopback

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# The current caller, for servicers

_IDENTITY: contextvars.ContextVar[Identity | None] = contextvars.ContextVar(
    "cardstation_identity", default=None
)


def current_identity() -> Identity | None:
    """The caller of the RPC being served (set by AuthInterceptor), or None outside one."""
    return _IDENTITY.get()


@functools.lru_cache(maxsize=4096)
def _peer_is_loopback(peer: str) -> bool:
    """True for grpc peer strings like "ipv4:127.0.0.1:5000" or "ipv6:[::1]:5000".

    Cached: a connection's peer string is the same on every call it carries, and parsing it
    (ipaddress) was a noticeable share of a call. The cache is bounded, so many peers only
    cost a re-parse."""
    if peer.startswith(("ipv4:", "ipv6:")):
        return is_loopback(peer[5:].rsplit(":", 1)[0])  # the one loopback rule (server/tls)
    return False  # unix sockets and unknown transports: not for the simulate fallback


def _issuance_id(message: Any) -> str | None:
    """`id` (string) of a request, or `issuance.id` of a response, when the message has one."""
    if message is None or not hasattr(message, "DESCRIPTOR"):
        return None
    fields = message.DESCRIPTOR.fields_by_name
    value = getattr(message, "id", None) if "id" in fields else None
    if isinstance(value, str) and value:
        return value
    if "issuance" in fields and message.HasField("issuance"):
        inner = message.issuance.id
        if inner:
            return inner
    return None


def _status_name(context: grpc.ServicerContext, error: BaseException | None) -> str:
    """The call's outcome as a status name, for the audit record."""
    code = None
    try:
        code = context.code()
    except (AttributeError, NotImplementedError):
        code = None
    if isinstance(code, grpc.StatusCode) and code is not grpc.StatusCode.OK:
        return code.name
    if isinstance(code, int) and code != 0:
        for status in grpc.StatusCode:
            if status.value[0] == code:
                return status.name
    if error is not None and ABORTED_WITH.get():  # a context that cannot say its code
        return ABORTED_WITH.get()
    return "UNKNOWN" if error is not None else "OK"


# The largest number of distinct verified certificate name sets whose identity is kept.
_CERT_CACHE_SIZE = 1024


# ---------------------------------------------------------------------------------------------
# The interceptor


class AuthInterceptor(grpc.ServerInterceptor):
    """Authenticates and authorizes every call; audits state-changing ones.

    Arguments:
      tokens: bearer tokens (None: token authentication off).
      client_roles: mTLS client certificate common name (or SAN) -> role.
      audit: where state-changing calls are recorded (None: not recorded).
      simulate_loopback: let credential-less callers on a loopback peer act as the built-in
        admin "loopback". Only for `cardstation serve --simulate` listening on 127.0.0.1/::1;
        `server.tls.check_listen_security` refuses simulate on any other address.
      method_roles, state_changing: override the tables (tests).

    The wrapped handler of each method is built once and kept (`intercept_service` runs on
    every call); the tables are read at that point, so they are fixed after the first call.
    """

    def __init__(
        self,
        tokens: TokenStore | None = None,
        client_roles: Mapping[str, Role | str] | None = None,
        audit: AuditLog | None = None,
        *,
        simulate_loopback: bool = False,
        method_roles: Mapping[str, frozenset[Role]] | None = None,
        state_changing: frozenset[str] | None = None,
    ) -> None:
        self.tokens = tokens
        self.client_roles = {k: Role(v) for k, v in (client_roles or {}).items()}
        self.audit = audit
        self.simulate_loopback = simulate_loopback
        self.method_roles = dict(METHOD_ROLES if method_roles is None else method_roles)
        self.state_changing = STATE_CHANGING if state_changing is None else state_changing
        # method -> the handler handed to grpc. Only methods the server has a handler for
        # are kept, so the map is bounded by the registered methods, not by callers.
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}
        self._cert_identity = functools.lru_cache(maxsize=_CERT_CACHE_SIZE)(self._cert_lookup)

    # -- identification ----------------------------------------------------------------------

    def identify(self, context: grpc.ServicerContext) -> Identity:
        """Who the caller is. Raises AuthError when no credential identifies them."""
        bearer: str | None = None
        for key, value in context.invocation_metadata() or ():
            if key.lower() == "authorization":
                bearer = value if isinstance(value, str) else value.decode("latin-1")
                break
        if bearer is not None:
            scheme, _, token = bearer.strip().partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token:
                raise AuthError("TOKEN_INVALID", 'authorization metadata must be "Bearer <token>"')
            if self.tokens is None:
                raise AuthError("TOKEN_INVALID", "this server does not accept bearer tokens")
            return self.tokens.authenticate(token)

        auth = context.auth_context() or {}
        names = (*auth.get("x509_common_name", ()), *auth.get("x509_subject_alternative_name", ()))
        if names:
            return self._cert_identity(names)

        if self.simulate_loopback and _peer_is_loopback(context.peer() or ""):
            return LOOPBACK_IDENTITY
        raise AuthError("UNAUTHENTICATED",
                        "credentials required: a bearer token or a client certificate")

    def _cert_lookup(self, raw_names: tuple[bytes, ...]) -> Identity:
        """The identity of a verified certificate's names (CN first, then SANs). Kept per
        name set (`_cert_identity`); an unknown certificate raises and so is not kept."""
        names = [v.decode("utf-8", "replace") for v in raw_names]
        for name in names:
            role = self.client_roles.get(name)
            if role is not None:
                return Identity(name=name, role=role, via="mtls")
        raise AuthError("CLIENT_CERT_UNKNOWN",
                        f"client certificate {names[0]!r} has no role on this station")

    def policy(self, method: str) -> MethodPolicy:
        """The method's roles and audit flag, from the tables."""
        return resolve_policy(method, self.method_roles, self.state_changing)

    # -- the call wrapper --------------------------------------------------------------------

    def _admit(self, policy: MethodPolicy, request: Any,
               context: grpc.ServicerContext) -> Identity:
        """Identify and authorize, or abort the call (and audit a denied state change)."""
        method = policy.method
        try:
            identity = self.identify(context)
        except AuthError as exc:
            log.info("rejected %s: %s", method, exc.reason)
            abort_with(context, grpc.StatusCode.UNAUTHENTICATED, exc.reason, exc.message,
                       {"method": method})
        if policy.allowed is None or identity.role not in policy.allowed:
            log.warning("denied %s to %s (%s)", method, identity.name, identity.role.value)
            self._record(identity, policy, request, None, "PERMISSION_DENIED")
            abort_with(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                "ROLE_NOT_ALLOWED",
                f"role {identity.role.value!r} may not call {method}",
                {"method": method, "role": identity.role.value},
            )
        if policy.audited and self.audit is not None and self.audit.failed:
            # Fail closed: a state change that cannot be audited is not made.
            abort_with(context, grpc.StatusCode.UNAVAILABLE, "AUDIT_LOG_UNAVAILABLE",
                       "the audit log cannot be written; state-changing calls are refused",
                       {"method": method})
        return identity

    def _record(self, identity: Identity, policy: MethodPolicy, request: Any, response: Any,
                result: str) -> None:
        if self.audit is None or not policy.audited:
            return
        issuance_id = _issuance_id(request) or _issuance_id(response)
        try:
            self.audit.append(who=identity.name, role=identity.role.value, method=policy.method,
                              issuance_id=issuance_id, result=result)
        except Exception:
            # The call already happened, so its caller gets its result; the log is marked
            # failed (AuditLog.failed) and further state-changing calls are refused.
            log.exception("audit record for %s could not be written", policy.method)

    def _wrap_unary_response(self, behavior: Callable[..., Any], policy: MethodPolicy,
                             ) -> Callable[[Any, grpc.ServicerContext], Any]:
        def handler(request: Any, context: grpc.ServicerContext) -> Any:
            req = request if not isinstance(request, Iterator) else None
            ABORTED_WITH.set("")  # a worker thread's context outlives its calls
            identity = self._admit(policy, req, context)
            # The worker thread runs this call to its end, so setting and resetting the
            # identity in its context is enough (no copy of the context per call).
            reset = _IDENTITY.set(identity)
            if not policy.audited or self.audit is None:
                try:
                    return behavior(request, context)
                finally:
                    _IDENTITY.reset(reset)
            response = None
            error: BaseException | None = None
            try:
                response = behavior(request, context)
                return response
            except BaseException as exc:
                error = exc
                raise
            finally:
                _IDENTITY.reset(reset)
                self._record(identity, policy, req, response, _status_name(context, error))

        return handler

    def _wrap_stream_response(self, behavior: Callable[..., Any], policy: MethodPolicy,
                              ) -> Callable[[Any, grpc.ServicerContext], Iterator[Any]]:
        def handler(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            req = request if not isinstance(request, Iterator) else None
            identity = self._admit(policy, req, context)
            # A stream's generator runs step by step, so each step runs in a context of its
            # own that carries the identity.
            ctx = contextvars.copy_context()
            ctx.run(_IDENTITY.set, identity)
            try:
                responses = iter(ctx.run(behavior, request, context))
            except BaseException as exc:
                self._record(identity, policy, req, None, _status_name(context, exc))
                raise

            def stream() -> Iterator[Any]:
                error: BaseException | None = None
                last = None
                try:
                    while True:
                        try:
                            item = ctx.run(next, responses)
                        except StopIteration:
                            return
                        last = item
                        yield item
                except BaseException as exc:
                    error = exc
                    raise
                finally:
                    self._record(identity, policy, req, last, _status_name(context, error))

            return stream()

        return handler

    def _wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        """The handler grpc runs for `method`: the servicer's behind authentication."""
        if is_open_method(method):
            return handler
        policy = self.policy(method)
        kwargs = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary_response(handler.unary_unary, policy), **kwargs)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                self._wrap_unary_response(handler.stream_unary, policy), **kwargs)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream_response(handler.unary_stream, policy), **kwargs)
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(
                self._wrap_stream_response(handler.stream_stream, policy), **kwargs)
        return handler  # pragma: no cover - grpc handlers always have one of the four

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        """The method's handler wrapped so every call is authenticated and authorized first;
        built on the method's first call and reused (the servers' handlers depend on the
        method only)."""
        method = handler_call_details.method
        cached = self._handlers.get(method)
        if cached is not None:
            return cached
        handler = continuation(handler_call_details)
        if handler is None:
            return None  # unimplemented: not kept, so unknown names cannot grow the map
        wrapped = self._wrap(handler, method)
        self._handlers[method] = wrapped
        return wrapped
