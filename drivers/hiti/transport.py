"""Transport base class: a byte pipe to the printer, plus URL dispatch and a recorder.

A transport only moves bytes; framing is the printer's business. Subclasses implement
`_write`, `_read_chunk` and `_close`; this class adds buffered exact reads with a deadline.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cardstation.drivers.hiti.errors import PrinterTimeout

DEFAULT_URL = "usb://0d16:030a"


class Transport(ABC):
    """A bidirectional byte pipe to one printer."""

    #: Largest read handed to `_read_chunk`; USB reads whole 64-byte packets.
    read_chunk_size: int | None = None

    def __init__(self, url: str) -> None:
        self.url = url
        self._rx = bytearray()

    # -- subclass hooks --
    @abstractmethod
    def _write(self, data: bytes, timeout: float) -> None:
        """Write all of `data` or raise a PrinterError."""

    @abstractmethod
    def _read_chunk(self, size: int, timeout: float) -> bytes:
        """Return 1..size bytes (USB: up to a packet), or b"" when `timeout` passes."""

    @abstractmethod
    def _close(self) -> None: ...

    # -- public --
    def write(self, data: bytes, timeout: float = 5.0) -> None:
        self._write(bytes(data), timeout)

    def read_exact(self, n: int, timeout: float = 5.0) -> bytes:
        """Read exactly `n` bytes within `timeout` seconds, else raise PrinterTimeout."""
        deadline = time.monotonic() + timeout
        while len(self._rx) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PrinterTimeout(
                    f"timed out waiting for {n} bytes from the printer ({len(self._rx)} came)"
                )
            want = n - len(self._rx)
            if self.read_chunk_size:
                want = self.read_chunk_size
            self._rx += self._read_chunk(want, remaining)
        out = bytes(self._rx[:n])
        del self._rx[:n]
        return out

    def drop_buffered(self) -> bytes:
        """Drop what was received but not read (no I/O): before a new command, such bytes
        belong to no reply the driver still waits for."""
        dropped = bytes(self._rx)
        self._rx.clear()
        return dropped

    def discard_input(self, quiet: float = 0.05) -> bytes:
        """Drop buffered and pending input (to resynchronise after a bad frame)."""
        dropped = bytes(self._rx)
        self._rx.clear()
        while True:
            chunk = self._read_chunk(self.read_chunk_size or 4096, quiet)
            if not chunk:
                return dropped
            dropped += chunk

    def close(self) -> None:
        self._close()

    def __enter__(self) -> Transport:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class RecordingTransport(Transport):
    """Wraps a transport and records every write and read: the driver's byte transcript."""

    def __init__(self, inner: Transport) -> None:
        super().__init__(inner.url)
        self.inner = inner
        self.read_chunk_size = inner.read_chunk_size
        self.records: list[tuple[str, bytes]] = []

    def _write(self, data: bytes, timeout: float) -> None:
        self.records.append((">", data))
        self.inner._write(data, timeout)

    def _read_chunk(self, size: int, timeout: float) -> bytes:
        data = self.inner._read_chunk(size, timeout)
        if data:
            self.records.append(("<", data))
        return data

    def _close(self) -> None:
        self.inner.close()

    def sent(self) -> list[bytes]:
        return [data for direction, data in self.records if direction == ">"]


def parse_usb_url(url: str) -> dict[str, Any]:
    """`usb://0d16:030a[?serial=...]` -> {"vid", "pid", "serial"}."""
    parts = urlsplit(url)
    vid_s, _, pid_s = (parts.netloc or "0d16:030a").partition(":")
    query = parse_qs(parts.query)
    serial = query.get("serial", [None])[0]
    return {"vid": int(vid_s, 16), "pid": int(pid_s or "030a", 16), "serial": serial}


def open_transport(url: str = DEFAULT_URL, backend: Any = None) -> Transport:
    """Open the transport a device URL names.

    `usb://VID:PID[?serial=SN]` uses pyusb (with `backend`, e.g. the simulator's); anything else
    goes to `serial.serial_for_url` (`socket://host:port`, `/dev/ttyUSB0`, `rfc2217://...`).
    """
    if url.startswith("usb:"):
        from cardstation.drivers.hiti.usb_transport import UsbTransport

        spec = parse_usb_url(url)
        return UsbTransport(
            vid=spec["vid"], pid=spec["pid"], serial=spec["serial"], backend=backend, url=url
        )
    from cardstation.drivers.hiti.stream_transport import StreamTransport

    return StreamTransport(url)
