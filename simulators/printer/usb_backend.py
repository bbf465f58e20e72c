"""The simulated CS-220e as a pyusb backend, so the driver's real pyusb code path runs.

`usb.core.find(idVendor=0x0D16, idProduct=0x030A, backend=SimUsbBackend(model))` finds it; bulk
OUT transfers feed a protocol Session, bulk IN transfers drain its replies. Pulling the cable
(`model.unplug_printer()`) removes the device from enumeration and makes every transfer on an
open handle raise `usb.core.USBError` with errno ENODEV, as libusb does.
"""

from __future__ import annotations

import array
import errno
import threading
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import usb.backend
import usb.core

from cardstation.simulators.printer.model import PrinterModel
from cardstation.simulators.printer.protocol import Session

VID = 0x0D16
PID = 0x030A
EP_OUT = 0x01
EP_IN = 0x82
_STRINGS = {1: "HiTi Digital, Inc.", 2: "CS-220e"}
_LANGID_EN_US = 0x0409
_GET_DESCRIPTOR = 6
_DESC_STRING = 3


# pyusb reads descriptor fields as attributes.
_Descriptor = SimpleNamespace


@dataclass(frozen=True)
class _DeviceId:
    bus: int = 1
    address: int = 5


class _Handle:
    def __init__(self, model: PrinterModel) -> None:
        self.generation = model.usb_generation
        self.session = Session(model)
        self.closed = False


class SimUsbBackend(usb.backend.IBackend):
    """pyusb backend exposing one simulated CS-220e (VID 0x0D16, PID 0x030A)."""

    def __init__(self, model: PrinterModel) -> None:
        super().__init__()
        self.model = model
        self._lock = threading.Lock()
        self._device = _DeviceId()

    # -- helpers --
    def _check(self, handle: _Handle | None = None) -> None:
        gone = not self.model.printer_connected
        if handle is not None:
            gone = gone or handle.closed or handle.generation != self.model.usb_generation
        if gone:
            raise usb.core.USBError("No such device (it may have been disconnected)",
                                    -4, errno.ENODEV)  # fmt: skip

    # -- enumeration and descriptors --
    def enumerate_devices(self) -> Any:
        if self.model.printer_connected:
            yield self._device

    def get_parent(self, dev: Any) -> None:
        return None

    def get_device_descriptor(self, dev: Any) -> _Descriptor:
        return _Descriptor(**{
            "bLength": 18, "bDescriptorType": 1, "bcdUSB": 0x0200, "bDeviceClass": 0,
            "bDeviceSubClass": 0, "bDeviceProtocol": 0, "bMaxPacketSize0": 64,
            "idVendor": VID, "idProduct": PID, "bcdDevice": 0x0100, "iManufacturer": 1,
            "iProduct": 2, "iSerialNumber": 3, "bNumConfigurations": 1,
            "address": dev.address, "bus": dev.bus, "port_number": 1, "port_numbers": (1,),
            "speed": 3,
        })  # fmt: skip

    def get_configuration_descriptor(self, dev: Any, config: int) -> _Descriptor:
        if config != 0:
            raise IndexError(config)
        return _Descriptor(**{
            "bLength": 9, "bDescriptorType": 2, "wTotalLength": 32, "bNumInterfaces": 1,
            "bConfigurationValue": 1, "iConfiguration": 0, "bmAttributes": 0xC0,
            "bMaxPower": 1, "extra_descriptors": [],
        })  # fmt: skip

    def get_interface_descriptor(self, dev: Any, intf: int, alt: int, config: int) -> _Descriptor:
        if intf != 0 or alt != 0:
            raise IndexError(intf)
        return _Descriptor(**{
            "bLength": 9, "bDescriptorType": 4, "bInterfaceNumber": 0, "bAlternateSetting": 0,
            "bNumEndpoints": 2, "bInterfaceClass": 7, "bInterfaceSubClass": 1,
            "bInterfaceProtocol": 2, "iInterface": 0, "extra_descriptors": [],
        })  # fmt: skip

    def get_endpoint_descriptor(
        self, dev: Any, ep: int, intf: int, alt: int, config: int
    ) -> _Descriptor:
        if ep not in (0, 1):
            raise IndexError(ep)
        return _Descriptor(**{
            "bLength": 7, "bDescriptorType": 5, "bEndpointAddress": (EP_OUT, EP_IN)[ep],
            "bmAttributes": 2, "wMaxPacketSize": 512, "bInterval": 0, "bRefresh": 0,
            "bSynchAddress": 0, "extra_descriptors": [],
        })  # fmt: skip

    # -- device handle --
    def open_device(self, dev: Any) -> _Handle:
        self._check()
        return _Handle(self.model)

    def close_device(self, dev_handle: _Handle) -> None:
        dev_handle.closed = True
        dev_handle.session.close()

    def set_configuration(self, dev_handle: _Handle, config_value: int) -> None:
        self._check(dev_handle)

    def get_configuration(self, dev_handle: _Handle) -> int:
        self._check(dev_handle)
        return 1

    def set_interface_altsetting(self, dev_handle: _Handle, intf: int, altsetting: int) -> None:
        self._check(dev_handle)

    def claim_interface(self, dev_handle: _Handle, intf: int) -> None:
        self._check(dev_handle)

    def release_interface(self, dev_handle: _Handle, intf: int) -> None:
        self._check(dev_handle)

    def is_kernel_driver_active(self, dev_handle: _Handle, intf: int) -> bool:
        return False

    def detach_kernel_driver(self, dev_handle: _Handle, intf: int) -> None:
        return None

    def attach_kernel_driver(self, dev_handle: _Handle, intf: int) -> None:
        return None

    def clear_halt(self, dev_handle: _Handle, ep: int) -> None:
        self._check(dev_handle)

    def reset_device(self, dev_handle: _Handle) -> None:
        self._check(dev_handle)

    # -- transfers --
    def bulk_write(
        self, dev_handle: _Handle, ep: int, intf: int, data: array.array, timeout: int
    ) -> int:
        self._check(dev_handle)
        with self._lock:
            dev_handle.session.feed(data.tobytes())
        return len(data)

    def bulk_read(
        self, dev_handle: _Handle, ep: int, intf: int, buff: array.array, timeout: int
    ) -> int:
        self._check(dev_handle)
        session = dev_handle.session
        with session.output_ready:
            # Replies are produced synchronously by writes; wait only in case another thread
            # writes, and to honour the caller's timeout like a real device.
            if not session.has_output:
                session.output_ready.wait(max(timeout, 1) / 1000)
        self._check(dev_handle)
        data = session.take_output(len(buff))
        if not data:
            raise usb.core.USBTimeoutError("Operation timed out", -7, errno.ETIMEDOUT)
        buff[: len(data)] = array.array("B", data)
        return len(data)

    def ctrl_transfer(
        self,
        dev_handle: _Handle,
        bmRequestType: int,
        bRequest: int,
        wValue: int,
        wIndex: int,
        data: array.array,
        timeout: int,
    ) -> int:
        self._check(dev_handle)
        if bRequest != _GET_DESCRIPTOR or wValue >> 8 != _DESC_STRING:
            return 0
        index = wValue & 0xFF
        if index == 0:
            body = _LANGID_EN_US.to_bytes(2, "little")
        else:
            text = _STRINGS.get(index, self.model.serial if index == 3 else "")
            body = text.encode("utf-16-le")
        desc = bytes([2 + len(body), _DESC_STRING]) + body
        n = min(len(desc), len(data))
        data[:n] = array.array("B", desc[:n])
        return n
