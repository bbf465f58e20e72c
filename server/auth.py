"""Who is calling, and may they call this method: tokens, mTLS client certificates, roles.

Callers are identified, in this order, by

1. `authorization: Bearer <token>` metadata, checked against a `TokenStore` (sha256 hashes only;
   the plaintext token is never stored, logged, or echoed in an error);
2. the verified mTLS client certificate: its common name (then each subject alternative name)
   looked up in `client_roles` (CN -> Role);
3. only when the interceptor is built with `simulate_loopback=True` — which `cardstation serve
   --simulate` does, and only on a 127.0.0.1 / ::1 listen address (see `server.tls`) — a
   built-in admin identity "loopback" for callers whose peer address is loopback.

No identity -> UNAUTHENTICATED (reason UNAUTHENTICATED, TOKEN_INVALID, TOKEN_EXPIRED or
CLIENT_CERT_UNKNOWN). A role that may not call the method -> PERMISSION_DENIED (reason
ROLE_NOT_ALLOWED, metadata method and role). Methods of our package that `METHOD_ROLES` does not
list are denied to everyone (fail closed); grpc.health.v1 and grpc.reflection are open.

Servicers read the caller with `current_identity()`. Calls to `STATE_CHANGING` methods are
written to the `AuditLog` after they finish (also when they fail or are denied).

Build the server::

    interceptor = AuthInterceptor(
        tokens=TokenStore.load("etc/tokens.json"),
        client_roles={"window-1": Role.OPERATOR},
        audit=AuditLog("var/station/audit.jsonl", key=load_or_create_key("var/station/audit.key")),
    )
    server = grpc.server(ThreadPoolExecutor(max_workers=16), interceptors=[interceptor])
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import grpc

from cardstation.server.audit import AuditLog
from cardstation.server.errors import PACKAGE, abort_with
from cardstation.server.tls import is_loopback

log = logging.getLogger(__name__)


class Role(StrEnum):
    """What a caller is for: the window operator, an upstream system, or an administrator."""

    OPERATOR = "operator"
    UPSTREAM = "upstream"
    ADMIN = "admin"


@dataclass(frozen=True)
class Identity:
    """An authenticated caller. `via` is "token", "mtls" or "loopback-simulate"."""

    name: str
    role: Role
    via: str


LOOPBACK_IDENTITY = Identity(name="loopback", role=Role.ADMIN, via="loopback-simulate")


def _m(service: str, method: str) -> str:
    return f"/{PACKAGE}.{service}/{method}"


_OPERATOR = frozenset({Role.OPERATOR, Role.ADMIN})
_UPSTREAM = frozenset({Role.UPSTREAM, Role.ADMIN})
_BOTH = frozenset({Role.OPERATOR, Role.UPSTREAM, Role.ADMIN})
_ADMIN = frozenset({Role.ADMIN})

#: IntakeService's RPCs, and those of them that change something at the CMS
INTAKE_CHANGES = ("SubmitApplication", "RegisterFee", "MarkInstantIssuance", "HandOverCard",
                  "ReportLoss", "LiftLoss", "CancelCard", "ApplyReplacement")
INTAKE_METHODS = ("NormalisePhoto", "GetCardLife", *INTAKE_CHANGES)

# Every RPC of the protos -> the roles that may call it. Admin may call everything.
METHOD_ROLES: dict[str, frozenset[Role]] = {
    # IssuanceService
    _m("IssuanceService", "GetApplication"): _BOTH,
    _m("IssuanceService", "PreviewCard"): _OPERATOR,
    _m("IssuanceService", "CreateIssuance"): _BOTH,
    _m("IssuanceService", "GetIssuance"): _BOTH,
    _m("IssuanceService", "ListIssuances"): _BOTH,
    _m("IssuanceService", "WatchIssuance"): _BOTH,
    _m("IssuanceService", "CancelIssuance"): _OPERATOR,
    _m("IssuanceService", "ResumeIssuance"): _OPERATOR,
    _m("IssuanceService", "ReprintFace"): _OPERATOR,
    _m("IssuanceService", "RejectCard"): _OPERATOR,
    _m("IssuanceService", "MarkSpoiled"): _OPERATOR,
    _m("IssuanceService", "RestoreAndResend"): _OPERATOR,
    # StationService: the fault table makes calibration, cleaning and reset operator tasks
    _m("StationService", "GetStation"): _BOTH,
    _m("StationService", "WatchStation"): _BOTH,
    _m("StationService", "CalibrateRibbonSensor"): _OPERATOR,
    _m("StationService", "CleanCardPath"): _OPERATOR,
    _m("StationService", "ResetPrinter"): _OPERATOR,
    # ReturnService: operators see and resend returns (失败数据回盘); upstream systems watch
    _m("ReturnService", "ListReturns"): _BOTH,
    _m("ReturnService", "RetryReturns"): _OPERATOR,
    # WindowService: the operator at the window (reads, PINs, temporary cards)
    **{_m("WindowService", name): _OPERATOR for name in (
        "ReadIdCard", "ReadCard", "RevealCardNumbers", "WatchPinEntry", "VerifyReturnedCard",
        "VerifyPin", "ChangePin", "UnblockPin",
        "ResetPin", "IssueTemporaryCard", "RewriteTemporaryCard", "RecallTemporaryCard")},
    # IntakeService: the window's intake and card life (the operator at the window)
    **{_m("IntakeService", name): _OPERATOR for name in INTAKE_METHODS},
}

# Methods whose every call is written to the audit log: the state changes, and the one read that
# shows personal numbers in full (RevealCardNumbers).
STATE_CHANGING: frozenset[str] = frozenset(
    {
        _m("IssuanceService", "CreateIssuance"),
        _m("IssuanceService", "CancelIssuance"),
        _m("IssuanceService", "ResumeIssuance"),
        _m("IssuanceService", "ReprintFace"),
        _m("IssuanceService", "RejectCard"),
        _m("IssuanceService", "MarkSpoiled"),
        _m("IssuanceService", "RestoreAndResend"),
        _m("ReturnService", "RetryReturns"),
        _m("StationService", "CalibrateRibbonSensor"),
        _m("StationService", "CleanCardPath"),
        _m("StationService", "ResetPrinter"),
        _m("WindowService", "RevealCardNumbers"),
        _m("WindowService", "ChangePin"),
        _m("WindowService", "UnblockPin"),
        _m("WindowService", "ResetPin"),
        _m("WindowService", "IssueTemporaryCard"),
        _m("WindowService", "RewriteTemporaryCard"),
        _m("WindowService", "RecallTemporaryCard"),
        *(_m("IntakeService", name) for name in INTAKE_CHANGES),
    }
)

# Services callable without credentials.
OPEN_PREFIXES: tuple[str, ...] = ("/grpc.health.v1.", "/grpc.reflection.")


def is_open_method(method: str) -> bool:
    """True for health checking and server reflection, which need no credentials."""
    return method.startswith(OPEN_PREFIXES)


class AuthError(Exception):
    """Authentication failed. `reason` is the ErrorInfo reason; the message holds no secret."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


# ---------------------------------------------------------------------------------------------
# Tokens


@dataclass(frozen=True)
class TokenEntry:
    """One bearer token as stored: its sha256 (hex), never the token itself."""

    name: str
    role: Role
    sha256: str
    expires_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The object written to the token file."""
        return {
            "name": self.name,
            "role": self.role.value,
            "sha256": self.sha256,
            "expires_at": self.expires_at,
        }


class TokenStore:
    """Bearer tokens, held as sha256 hashes.

    File format (JSON)::

        {"tokens": [{"name": "window-1", "role": "operator",
                     "sha256": "<hex sha256 of the token>", "expires_at": 1767225600.0}]}

    `expires_at` is seconds since the epoch, or null for no expiry.
    """

    def __init__(
        self,
        entries: Iterable[TokenEntry] = (),
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._entries: list[TokenEntry] = list(entries)
        self._clock = clock

    @staticmethod
    def hash(token: str) -> str:
        """The hex sha256 of a token, as the token file stores it."""
        return hashlib.sha256(token.encode("utf-8")).hexdigest()

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, clock: Callable[[], float] = time.time
             ) -> TokenStore:
        """Read a token file. Raises ValueError naming the file and the bad entry."""
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ValueError(f"token file {p} does not exist") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"token file {p} cannot be read: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("tokens"), list):
            raise ValueError(f'token file {p}: expected {{"tokens": [...]}}')
        entries = []
        for i, raw in enumerate(data["tokens"]):
            where = f"token file {p}, tokens[{i}]"
            if not isinstance(raw, dict):
                raise ValueError(f"{where}: expected an object")
            try:
                role = Role(str(raw.get("role")))
            except ValueError:
                allowed = ", ".join(r.value for r in Role)
                raise ValueError(f"{where}: role must be one of {allowed}") from None
            digest = str(raw.get("sha256", "")).lower()
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError(f"{where}: sha256 must be 64 hex digits")
            if "token" in raw:
                raise ValueError(f"{where}: plaintext tokens are not allowed; store sha256")
            expires = raw.get("expires_at")
            if expires is not None and not isinstance(expires, int | float):
                raise ValueError(f"{where}: expires_at must be a number or null")
            name = raw.get("name")
            if not isinstance(name, str) or not name:
                raise ValueError(f"{where}: name is required")
            entries.append(TokenEntry(name, role, digest, None if expires is None
                                      else float(expires)))
        return cls(entries, clock=clock)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the token file (mode 0600), replacing it atomically."""
        p = Path(path)
        tmp = p.with_name(p.name + ".tmp")
        payload = json.dumps({"tokens": [e.to_json() for e in self._entries]}, indent=2)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(payload + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)

    @property
    def entries(self) -> tuple[TokenEntry, ...]:
        """The stored entries (hashes only)."""
        return tuple(self._entries)

    def add(self, entry: TokenEntry) -> None:
        """Add one entry."""
        self._entries.append(entry)

    def issue(
        self, name: str, role: Role | str, ttl_seconds: float | None
    ) -> tuple[str, TokenEntry]:
        """Make a new random token for `name`, store its hash, return (token, entry).

        The token is shown once to whoever asked for it; only its hash is kept.
        """
        token = secrets.token_urlsafe(32)
        expires = None if ttl_seconds is None else self._clock() + ttl_seconds
        entry = TokenEntry(name=name, role=Role(role), sha256=self.hash(token), expires_at=expires)
        self.add(entry)
        return token, entry

    def authenticate(self, token: str) -> Identity:
        """The identity a token stands for. Raises AuthError(TOKEN_INVALID / TOKEN_EXPIRED)."""
        digest = self.hash(token)
        found: TokenEntry | None = None
        # Compare against every entry, in constant time each, without stopping early.
        for entry in self._entries:
            if hmac.compare_digest(entry.sha256, digest) and found is None:
                found = entry
        if found is None:
            raise AuthError("TOKEN_INVALID", "the bearer token is not recognised")
        if found.expires_at is not None and self._clock() >= found.expires_at:
            raise AuthError("TOKEN_EXPIRED", f"the bearer token of {found.name!r} has expired")
        return Identity(name=found.name, role=found.role, via="token")


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
    return "UNKNOWN" if error is not None else "OK"


@dataclass(frozen=True)
class MethodPolicy:
    """What the interceptor needs to know about one method, resolved once per method:
    who may call it (None: nobody, fail closed) and whether its calls are audited."""

    method: str
    allowed: frozenset[Role] | None
    audited: bool


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
        return MethodPolicy(method, self.method_roles.get(method), method in self.state_changing)

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
