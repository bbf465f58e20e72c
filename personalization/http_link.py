"""One persistent HTTP connection per thread to one server (the CMS client's transport).

A new connection per call costs a TCP handshake (a TLS one too over https) and, at the server,
a new worker; the station makes its CMS calls for a card one after the other. Each thread keeps
its own connection (an http.client connection is not safe to share between threads) and reuses
it while it has been idle for less than `IDLE_LIMIT` and the server has not closed it. The
caller gives a connection back only after a complete answer that leaves it open; after any
failure it closes it, so the next call connects afresh (that is the reconnect).

A request is never sent twice by this module: a connection the server closed while it was idle
is seen closed before anything is written (`_idle_and_open`), and the idle limit stays under
the keep-alive timeouts servers commonly use (5 s and up), so the server does not close it
while the request is on its way. The connection is made by the caller's factory, with the
caller's TLS context: nothing here changes how the server is verified.
"""

from __future__ import annotations

import select
import ssl
import threading
import time
import weakref
from collections.abc import Callable
from http.client import HTTPConnection

#: Seconds an idle connection is reused for; older ones are closed and replaced.
IDLE_LIMIT = 4.0


class ConnectionPerThread:
    """`take` a connection (reused, or a new one not yet connected), `give_back` it after a
    complete answer; `close` closes every idle one (station shutdown)."""

    def __init__(self, factory: Callable[[], HTTPConnection], idle_limit: float = IDLE_LIMIT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._factory = factory
        self._idle_limit = idle_limit
        self._clock = clock
        self._local = threading.local()
        # every idle connection, for close(); weak: a finished thread's goes with its locals
        self._idle: weakref.WeakSet[HTTPConnection] = weakref.WeakSet()
        self._lock = threading.Lock()

    def take(self) -> tuple[HTTPConnection, bool]:
        """(connection, reused): a reused one is connected; a new one is not."""
        conn: HTTPConnection | None = getattr(self._local, "conn", None)
        since: float = getattr(self._local, "since", 0.0)
        self._local.conn = None  # in use: a nested call in this thread gets its own
        if conn is not None:
            with self._lock:
                self._idle.discard(conn)
            if self._clock() - since < self._idle_limit and _idle_and_open(conn):
                return conn, True
            conn.close()
        return self._factory(), False

    def give_back(self, conn: HTTPConnection) -> None:
        """Keep `conn` for this thread's next call (it must have read a whole answer)."""
        old: HTTPConnection | None = getattr(self._local, "conn", None)
        if old is not None and old is not conn:
            old.close()
        self._local.conn, self._local.since = conn, self._clock()
        with self._lock:
            self._idle.add(conn)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = list(self._idle), weakref.WeakSet()
        for conn in idle:
            conn.close()


def _idle_and_open(conn: HTTPConnection) -> bool:
    """An idle connection has nothing to read: readable means the server closed it (EOF, a TLS
    close_notify) or sent something unasked; either way it is not used again."""
    sock = conn.sock
    if sock is None:
        return False
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return False
    poller = select.poll()  # not select(): a busy server's descriptors go past 1024
    try:
        poller.register(sock, select.POLLIN)
        events = poller.poll(0)
    except (OSError, ValueError):  # closed underneath
        return False
    return not events
