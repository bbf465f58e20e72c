"""The base of every error a device adapter raises across a port: a domain `code` (the public
reason, e.g. PRINTER_COVER_OPEN), the `cause` and the `remedy` an operator reads, and the
vendor's own code when the device gave one (shown for service calls, never used as a reason).
python-can's CanError carrying `error_code` is the model."""

from __future__ import annotations


class DeviceError(Exception):
    code: str = "DEVICE_ERROR"
    remedy: str = "check the device's cables and power, then try again"

    def __init__(self, cause: str, remedy: str | None = None, *, code: str | None = None,
                 vendor_code: str = "") -> None:
        super().__init__(cause)
        self.cause = cause
        if remedy is not None:
            self.remedy = remedy
        if code is not None:
            self.code = code
        self.vendor_code = vendor_code

    def __str__(self) -> str:
        return self.cause
