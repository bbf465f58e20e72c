"""Who is calling, and may they call this method: tokens, mTLS client certificates, roles.

One concern a module: `identity` (roles, the authenticated caller), `policy` (which role may
call which method, and which calls are audited), `tokens` (the hashed bearer-token store and
its file) and `interceptor` (the gRPC interceptor: identity per call, authorization, audit).
The names the rest of the station uses are re-exported here.

Build the server::

    interceptor = AuthInterceptor(
        tokens=TokenStore.load("etc/tokens.json"),
        client_roles={"window-1": Role.OPERATOR},
        audit=AuditLog("var/station/audit.jsonl", key=load_or_create_key("var/station/audit.key")),
    )
    server = grpc.server(ThreadPoolExecutor(max_workers=16), interceptors=[interceptor])
"""

from __future__ import annotations

from cardstation.server.auth.identity import LOOPBACK_IDENTITY, AuthError, Identity, Role
from cardstation.server.auth.interceptor import AuthInterceptor, current_identity
from cardstation.server.auth.policy import (
    METHOD_ROLES,
    OPEN_PREFIXES,
    STATE_CHANGING,
    MethodPolicy,
    is_open_method,
)
from cardstation.server.auth.tokens import TokenEntry, TokenStore

__all__ = [
    "LOOPBACK_IDENTITY",
    "METHOD_ROLES",
    "OPEN_PREFIXES",
    "STATE_CHANGING",
    "AuthError",
    "AuthInterceptor",
    "Identity",
    "MethodPolicy",
    "Role",
    "TokenEntry",
    "TokenStore",
    "current_identity",
    "is_open_method",
]
