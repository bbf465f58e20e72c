"""USB bulk transport over pyusb (VID 0x0D16, PID 0x030A for the CS-220e)."""

from __future__ import annotations

import errno
from typing import Any

import usb.core
import usb.util

from cardstation.drivers.hiti.errors import (
    VENDOR_READ_FAIL,
    VENDOR_WRITE_FAIL,
    PrinterError,
    PrinterNotConnected,
)
from cardstation.drivers.hiti.frames import USB_PACKET
from cardstation.drivers.hiti.transport import Transport

HITI_VID = 0x0D16
CS220E_PID = 0x030A

# errnos meaning the device is gone rather than that one transfer failed.
_GONE = {errno.ENODEV, errno.EIO, errno.ENOENT, errno.ESHUTDOWN, errno.EPIPE}


def _gone(exc: usb.core.USBError) -> bool:
    # libusb1 maps LIBUSB_ERROR_NO_DEVICE (-4) to ENODEV; keep the raw code too.
    return exc.errno in _GONE or getattr(exc, "backend_error_code", None) == -4


class UsbTransport(Transport):
    """Claims the printer's interface and talks over its bulk IN/OUT endpoints."""

    read_chunk_size = USB_PACKET

    def __init__(
        self,
        vid: int = HITI_VID,
        pid: int = CS220E_PID,
        serial: str | None = None,
        backend: Any = None,
        interface: int = 0,
        url: str | None = None,
    ) -> None:
        super().__init__(url or f"usb://{vid:04x}:{pid:04x}")
        self._interface = interface
        self._dev = self._find(vid, pid, serial, backend)
        try:
            self._claim()
        except usb.core.USBError as exc:
            usb.util.dispose_resources(self._dev)
            raise PrinterNotConnected(f"cannot claim the printer's USB interface: {exc}") from exc

    @staticmethod
    def _find(vid: int, pid: int, serial: str | None, backend: Any) -> Any:
        def match(dev: Any) -> bool:
            if serial is None:
                return True
            try:
                return bool(dev.serial_number == serial)
            except (usb.core.USBError, ValueError):
                return False

        try:
            dev = usb.core.find(idVendor=vid, idProduct=pid, backend=backend, custom_match=match)
        except usb.core.NoBackendError as exc:
            raise PrinterNotConnected(f"no USB backend available: {exc}") from exc
        if dev is None:
            which = f"{vid:04x}:{pid:04x}" + (f" serial {serial}" if serial else "")
            raise PrinterNotConnected(f"printer {which} not found on USB")
        return dev

    def _claim(self) -> None:
        dev = self._dev
        try:
            if dev.is_kernel_driver_active(self._interface):
                dev.detach_kernel_driver(self._interface)
        except (NotImplementedError, usb.core.USBError):
            pass  # not every backend/OS has kernel drivers to detach
        try:
            dev.set_configuration()
        except usb.core.USBError as exc:
            if exc.errno != errno.EBUSY:  # already configured by the OS is fine
                raise
        usb.util.claim_interface(dev, self._interface)
        intf = dev.get_active_configuration()[(self._interface, 0)]

        def bulk(direction: int) -> Any:
            return usb.util.find_descriptor(
                intf,
                custom_match=lambda e: usb.util.endpoint_direction(e.bEndpointAddress) == direction
                and usb.util.endpoint_type(e.bmAttributes) == usb.util.ENDPOINT_TYPE_BULK,
            )

        self._ep_out = bulk(usb.util.ENDPOINT_OUT)
        self._ep_in = bulk(usb.util.ENDPOINT_IN)
        if self._ep_out is None or self._ep_in is None:
            raise PrinterNotConnected("printer interface has no bulk IN/OUT endpoints")

    def _fail(self, exc: usb.core.USBError, action: str, code: int) -> PrinterError:
        if _gone(exc):
            return PrinterNotConnected(f"printer disconnected during {action}: {exc}")
        return PrinterError(f"USB {action} failed: {exc}", code)

    def _write(self, data: bytes, timeout: float) -> None:
        try:
            written = self._dev.write(self._ep_out.bEndpointAddress, data, int(timeout * 1000))
        except usb.core.USBTimeoutError as exc:
            raise PrinterError(f"USB write timed out: {exc}", VENDOR_WRITE_FAIL) from exc
        except usb.core.USBError as exc:
            raise self._fail(exc, "write", VENDOR_WRITE_FAIL) from exc
        if written != len(data):
            raise PrinterError(f"short USB write ({written} of {len(data)})", VENDOR_WRITE_FAIL)

    def _read_chunk(self, size: int, timeout: float) -> bytes:
        try:
            data = self._dev.read(
                self._ep_in.bEndpointAddress, USB_PACKET, max(1, int(timeout * 1000))
            )
        except usb.core.USBTimeoutError:
            return b""
        except usb.core.USBError as exc:
            raise self._fail(exc, "read", VENDOR_READ_FAIL) from exc
        return bytes(data)

    def _close(self) -> None:
        try:
            usb.util.release_interface(self._dev, self._interface)
        except usb.core.USBError:
            pass  # the device may be gone already
        usb.util.dispose_resources(self._dev)
