"""Byte-stream transport over pyserial URLs: `socket://host:port` (the simulator), serial ports."""

from __future__ import annotations

import socket

import serial

from cardstation.drivers.hiti.errors import PrinterNotConnected, PrinterTimeout
from cardstation.drivers.hiti.transport import Transport


class StreamTransport(Transport):
    """A pyserial port opened with `serial.serial_for_url`."""

    def __init__(self, url: str, baudrate: int = 115200) -> None:
        super().__init__(url)
        try:
            self._port = serial.serial_for_url(url, baudrate=baudrate, timeout=1.0)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise PrinterNotConnected(f"cannot open {url}: {exc}") from exc
        sock = getattr(self._port, "_socket", None)
        if sock is not None:
            # pyserial's socket:// leaves Nagle on: a command's last short segment would wait
            # for the printer's delayed ACK (up to 40 ms per exchange, seen as PRINTED 20-100 ms)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _write(self, data: bytes, timeout: float) -> None:
        try:
            self._port.write_timeout = timeout
            self._port.write(data)
        except serial.SerialTimeoutException as exc:
            raise PrinterTimeout(f"write to {self.url} timed out") from exc
        except (serial.SerialException, OSError) as exc:
            raise PrinterNotConnected(f"printer connection lost ({self.url}): {exc}") from exc

    def _read_chunk(self, size: int, timeout: float) -> bytes:
        try:
            self._port.timeout = timeout
            return bytes(self._port.read(size))
        except (serial.SerialException, OSError) as exc:
            raise PrinterNotConnected(f"printer connection lost ({self.url}): {exc}") from exc

    def _close(self) -> None:
        sock = getattr(self._port, "_socket", None)
        if sock is not None:
            # pyserial's socket:// close() sleeps 0.3 s "for quick reconnects"; closing the
            # socket ourselves keeps reconnects (and tests) fast.
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # the peer closed first
            sock.close()
            self._port._socket = None
            self._port.is_open = False
            return
        try:
            self._port.close()
        except (serial.SerialException, OSError):
            pass  # closing a dead connection
