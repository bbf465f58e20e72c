"""The simulated GA 467 reader on a pseudo-terminal, so the driver talks to it through pyserial.

`IdReaderSimulator.start()` opens a pty pair, puts the line in raw mode, serves the master side
in a thread and returns the slave's path (`/dev/pts/N`), which any pyserial client opens like a
real serial port. The simulator keeps its own handle on the slave so a client may close and
reopen the port. `stop()` closes both sides: a client still holding the port then sees its
reads fail (the driver reports ReaderNotResponding).

Framing on the device side (ssc-chip.md §12): bytes before a preamble are dropped; a LEN below
3 or absurdly large, or a frame that does not complete within `frame_timeout`, is answered with
SW3 11 (length error).
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
import tty

from cardstation.drivers.idreader import frames as fr
from cardstation.drivers.idreader.card import IdCard
from cardstation.simulators.idreader.model import SAMPLE_CARD, IdReaderModel

log = logging.getLogger(__name__)


class IdReaderSimulator:
    """A GA 467 reader on a pty: `start()` -> device path, `place/remove/inject` to drive it."""

    def __init__(self, card: IdCard | None = SAMPLE_CARD,
                 appended_address: str | list[str] | None = None,
                 frame_timeout: float = 0.3) -> None:
        self.model = IdReaderModel(card, appended_address)
        self.frame_timeout = frame_timeout
        self.path: str | None = None
        self._master: int | None = None
        self._slave: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Every byte received from the host, in order, whether or not it formed a frame.
        self.received_bytes = bytearray()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> str:
        """Open the pty, start serving, return the serial device path (e.g. /dev/pts/3)."""
        if self._thread is not None:
            raise RuntimeError("simulator already started")
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line editing: a byte pipe like a real UART
        self._master, self._slave = master, slave
        self.path = os.ttyname(slave)
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="idreader-sim", daemon=True)
        self._thread.start()
        log.debug("ID-card reader simulator on %s", self.path)
        return self.path

    def stop(self) -> None:
        """Stop serving and close the pty (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        for fd in (self._master, self._slave):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._master = self._slave = None

    def __enter__(self) -> IdReaderSimulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- control (delegates to the model) --------------------------------------------------

    def place(self, card: IdCard, appended_address: str | list[str] | None = None) -> None:
        """Put `card` on the reader (replacing any card there)."""
        self.model.place(card, appended_address)

    def remove(self) -> None:
        """Take the card off the reader."""
        self.model.remove()

    def inject(self, fault: str) -> None:
        """Inject a fault: no_card, sam_failure, corrupt_frame, auth_fail, read_fail,
        sam_not_authorized, no_reply (see model.FAULTS)."""
        self.model.inject(fault)

    def clear_faults(self) -> None:
        self.model.clear_faults()

    @property
    def received(self) -> list[bytes]:
        """Complete host frames received, in order."""
        return self.model.received

    @property
    def sent(self) -> list[bytes]:
        """Replies written, in order."""
        return self.model.sent

    @property
    def baudrate(self) -> int:
        """The line speed last set by a 60 xx command."""
        return self.model.baudrate

    # -- serving -------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        assert self._master is not None
        view = memoryview(data)
        while view:
            try:
                n = os.write(self._master, view)
            except BlockingIOError:
                select.select([], [self._master], [], 0.05)
                continue
            view = view[n:]

    def _serve(self) -> None:
        master = self._master
        assert master is not None
        buf = bytearray()
        started = 0.0  # when the frame now in buf began (monotonic)
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([master], [], [], 0.05)
                if ready:
                    chunk = os.read(master, 4096)
                    if chunk:
                        self.received_bytes += chunk
                        buf += chunk
            except OSError:
                # No process holds the slave open (cannot happen while we hold it) or closed.
                if self._stop.is_set():
                    return
                time.sleep(0.05)
                continue
            try:
                started = self._drain(buf, started)
            except OSError:
                return

    def _drain(self, buf: bytearray, started: float) -> float:
        """Answer every complete frame in `buf`; return when the pending frame began."""
        while True:
            idx = buf.find(fr.PREAMBLE)
            if idx < 0:
                del buf[: max(0, len(buf) - (len(fr.PREAMBLE) - 1))]
                return 0.0
            if idx:
                del buf[:idx]
                started = 0.0
            if not started:
                started = time.monotonic()
            if len(buf) >= fr.HEADER_SIZE:
                length = int.from_bytes(buf[5:7], "big")
                if length < fr.COMMAND_MIN_LEN or length > fr.COMMAND_MAX_LEN:
                    del buf[:]
                    self._write(self.model.length_error())
                    return 0.0
                if len(buf) >= fr.HEADER_SIZE + length:
                    frame = bytes(buf[: fr.HEADER_SIZE + length])
                    del buf[: fr.HEADER_SIZE + length]
                    started = 0.0
                    reply = self.model.handle(frame)
                    if reply is not None:
                        self._write(reply)
                    continue
            if time.monotonic() - started > self.frame_timeout:
                # Incomplete frame: LEN promised more than arrived.
                del buf[:]
                self._write(self.model.length_error())
                return 0.0
            return started
