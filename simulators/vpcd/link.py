"""Link a software card to the vsmartcard `vpcd` reader driver inside pcscd.

vpcd listens on TCP (127.0.0.1:35963 for slot 0, 35964 for slot 1, ...). A virtual card
"inserts" itself by connecting; closing the connection removes it. Frames in both directions are
a 2-byte big-endian length followed by the payload. From vpcd, a 1-byte payload is a control
code (0 power off, 1 power on, 2 reset, 4 get ATR; only ATR expects a reply); anything longer is
a command APDU, answered with the response APDU (data + SW1 SW2).

The link runs in a background thread, survives a pcscd restart by reconnecting, and exposes
insert/remove so the printer simulator can move a chip under and away from the contacts.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from typing import Protocol

log = logging.getLogger(__name__)

CTRL_POWER_OFF = 0
CTRL_POWER_ON = 1
CTRL_RESET = 2
CTRL_GET_ATR = 4
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 35963


class SmartCard(Protocol):
    """What the link needs of a card: the simulators' SSCard and Psam satisfy it."""

    @property
    def atr(self) -> bytes: ...

    def power_on(self) -> bytes: ...

    def power_off(self) -> None: ...

    def reset(self) -> bytes: ...

    def process_apdu(self, apdu: bytes) -> bytes: ...


def parse_address(text: str) -> tuple[str, int]:
    """'HOST:PORT' or 'PORT' -> (host, port), with a clear error for anything else."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = DEFAULT_HOST, text
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"vpcd address {text!r}: port must be a number (HOST:PORT)") from None
    if not 0 < port < 65536:
        raise ValueError(f"vpcd address {text!r}: port {port} out of range")
    return host or DEFAULT_HOST, port


class VpcdLink:
    """One vpcd slot with (optionally) one card in it."""

    def __init__(
        self,
        card: SmartCard | None = None,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        retry_interval: float = 0.2,
    ) -> None:
        self.host = host
        self.port = port
        self.retry_interval = retry_interval
        self._card = card
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._connected = threading.Event()
        self.apdu_count = 0

    # -- public API -----------------------------------------------------------------------
    @property
    def card(self) -> SmartCard | None:
        return self._card

    @property
    def connected(self) -> bool:
        """True while vpcd sees a card in the slot."""
        return self._connected.is_set()

    def start(self) -> VpcdLink:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name=f"vpcd-{self.port}", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._close_socket()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def insert(self, card: SmartCard) -> None:
        """Put `card` into the slot (replacing any card there) and connect to vpcd."""
        with self._lock:
            self._card = card
        self._close_socket()
        self.start()

    def remove(self) -> SmartCard | None:
        """Take the card out: the connection closes, pcscd reports the card removed."""
        with self._lock:
            card, self._card = self._card, None
        self._close_socket()
        if card is not None:
            card.power_off()
        return card

    def wait_connected(self, timeout: float = 5.0) -> bool:
        return self._connected.wait(timeout)

    def __enter__(self) -> VpcdLink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals ------------------------------------------------------------------------
    def _close_socket(self) -> None:
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._card is None:
                time.sleep(0.02)
                continue
            try:
                sock = socket.create_connection((self.host, self.port), timeout=2)
            except OSError:
                time.sleep(self.retry_interval)  # pcscd restarting or not up yet
                continue
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock = sock
            self._connected.set()
            log.debug("card inserted into vpcd %s:%d", self.host, self.port)
            try:
                self._serve(sock)
            except OSError:
                pass
            finally:
                self._connected.clear()
                self._sock = None
                sock.close()
                log.debug("card left vpcd %s:%d", self.host, self.port)

    def _serve(self, sock: socket.socket) -> None:
        while True:
            header = _recv_exact(sock, 2)
            if header is None:
                return
            (length,) = struct.unpack(">H", header)
            payload = _recv_exact(sock, length)
            if payload is None:
                return
            card = self._card
            if card is None:
                return
            if length == 1:
                reply = self._control(card, payload[0])
            else:
                self.apdu_count += 1
                reply = card.process_apdu(payload)
            if reply is not None:
                sock.sendall(struct.pack(">H", len(reply)) + reply)

    @staticmethod
    def _control(card: SmartCard, code: int) -> bytes | None:
        if code == CTRL_POWER_OFF:
            card.power_off()
        elif code == CTRL_POWER_ON:
            card.power_on()
        elif code == CTRL_RESET:
            card.reset()
        elif code == CTRL_GET_ATR:
            return card.atr
        else:
            log.warning("unknown vpcd control code %d ignored", code)
        return None


# vpcd writes a frame's length and body in two send() calls; with Nagle on its side and delayed
# ACKs on ours every APDU would stall ~40 ms. Quick ACK (Linux, reset by the kernel after each
# receive) makes the second write go out at once.
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


def _recv_exact(sock: socket.socket, size: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < size:
        if _QUICKACK is not None:
            sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        chunk = sock.recv(size - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)
