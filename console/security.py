"""Sessions, CSRF tokens and the Content-Security-Policy of the console.

Sessions live in the console's memory; the browser holds only a signed, HttpOnly,
SameSite=Strict cookie naming one (Secure under TLS), never the operator's token. Every
state-changing request carries the session's CSRF token (a form field, or the X-CSRF-Token
header htmx sends); the CSP allows no inline script and nothing from another origin.
"""

from __future__ import annotations

import ipaddress
import secrets
import threading
import time
from dataclasses import dataclass, field

from itsdangerous import BadSignature, URLSafeSerializer

COOKIE = "cardstation_console"
IDLE_SECONDS = 8 * 3600  # a window shift
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")


#: Roles whose callers do the window's work (the console shows them the action buttons).
WORKING_ROLES = frozenset({"operator", "admin"})


@dataclass
class Session:
    token: str
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    locale: str = "zh_CN"
    seen: float = field(default_factory=time.monotonic)
    name: str = ""
    role: str = ""

    @property
    def may_act(self) -> bool:
        """Whether to show buttons that change things (the server checks every call anyway)."""
        return self.role in WORKING_ROLES


class Sessions:
    def __init__(self, secret: str | None = None) -> None:
        self._signer = URLSafeSerializer(secret or secrets.token_urlsafe(32), "console-session")
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def open(self, token: str, locale: str, name: str = "", role: str = "") -> tuple[str, Session]:
        sid = secrets.token_urlsafe(32)
        session = Session(token, locale=locale, name=name, role=role)
        with self._lock:
            self._sessions[sid] = session
        return self._signer.dumps(sid), session

    def get(self, cookie: str | None) -> Session | None:
        if not cookie:
            return None
        try:
            sid = self._signer.loads(cookie)
        except BadSignature:
            return None
        with self._lock:
            session = self._sessions.get(sid)
            if session is None:
                return None
            if time.monotonic() - session.seen > IDLE_SECONDS:
                del self._sessions[sid]
                return None
            session.seen = time.monotonic()
            return session

    def close(self, cookie: str | None) -> None:
        try:
            sid = self._signer.loads(cookie or "")
        except BadSignature:
            return
        with self._lock:
            self._sessions.pop(sid, None)


def csrf_ok(session: Session, sent: str | None) -> bool:
    return bool(sent) and secrets.compare_digest(session.csrf, sent or "")


class InsecureListen(ValueError):
    pass


def check_listen(host: str, tls: bool) -> None:
    """Like `serve`: off loopback the console needs TLS (sessions and tokens cross it)."""
    if tls:
        return
    name = host.strip("[]")
    if name == "localhost":
        return
    try:
        if ipaddress.ip_address(name).is_loopback:
            return
    except ValueError:
        pass
    raise InsecureListen(f"the console may listen on {host} only with TLS (--tls-cert and "
                         "--tls-key): operators' sessions would cross the network in clear; "
                         "listen on 127.0.0.1 or give a certificate")
