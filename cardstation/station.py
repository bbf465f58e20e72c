"""Composition root: build the station (pipeline, outbox worker, devices) from configuration."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cardstation.config import Config
from cardstation.drivers.hiti import Printer
from cardstation.drivers.idreader import Ga467Reader
from cardstation.drivers.pcsc.readers import PcscContext
from cardstation.drivers.pcsc.transport import PcscTransport
from cardstation.drivers.pinpad.pinpad import PinPad
from cardstation.personalization.cms import CmsClient
from cardstation.personalization.journal import Issuance, Journal, State
from cardstation.personalization.keys.service import (
    KeyService,
    PsamKeyService,
    SoftwareKeyService,
)
from cardstation.personalization.model import ReturnRecord
from cardstation.personalization.outbox import Outbox, ReturnWorker
from cardstation.personalization.pinentry import PinPadEntry
from cardstation.personalization.pipeline import Devices, Pipeline
from cardstation.personalization.rules import PhotoSpec
from cardstation.personalization.window import WindowError, WindowServices


class Window:
    """The window's devices: the desk reader (through `services`), the ID-card reader and the
    PIN pad, opened on first use (a device that is unplugged at start-up must not stop the
    station) and opened again after a failure."""

    def __init__(self, config: Config, services: WindowServices, keys: KeyService) -> None:
        self.config = config
        self.services = services
        self.keys = keys
        self._idreader: Ga467Reader | None = None
        self._pins: PinPadEntry | None = None

    def idreader(self) -> Ga467Reader:
        if not self.config.window.idreader:
            raise WindowError("no_idreader", "no ID-card reader is configured ([window] "
                              "idreader in cardstation.toml)")
        if self._idreader is None:
            self._idreader = Ga467Reader(self.config.window.idreader,
                                         self.config.window.idreader_baud)
        return self._idreader

    def pins(self) -> PinPadEntry:
        if not self.config.window.pinpad:
            raise WindowError("no_pinpad", "no PIN pad is configured ([window] pinpad in "
                              "cardstation.toml)")
        if self._pins is None:
            self._pins = PinPadEntry(PinPad(self.config.window.pinpad), self.keys.pinpad_kek(),
                                     timeout_s=self.config.window.pin_timeout)
        return self._pins

    def reset(self) -> None:
        """Forget the serial devices after an error; the next use opens them again."""
        self.close()

    def close(self) -> None:
        if self._pins is not None:
            self._pins.close()
            self._pins.pad.close()
            self._pins = None
        if self._idreader is not None:
            self._idreader.close()
            self._idreader = None


@dataclass
class Station:
    config: Config
    journal: Journal
    outbox: Outbox
    cms: CmsClient
    printer: Printer
    keys: KeyService
    pipeline: Pipeline
    worker: ReturnWorker
    window: Window | None = None
    pcsc: PcscContext | None = None  # card-presence waits and reader look-ups

    def close(self) -> None:
        try:
            if self.window is not None:
                self.window.close()
            self.worker.stop()
            self.keys.close()
            self.printer.close()
            self.journal.close()
        finally:
            if self.pcsc is not None:
                self.pcsc.close()

    def drain_returns(self, timeout: float = 30.0) -> int:
        """Deliver due returns now until none is pending or `timeout` passes; the count left."""
        import time

        deadline = time.monotonic() + timeout
        while self.outbox.pending() and time.monotonic() < deadline:
            if not self.worker.run_once():
                time.sleep(0.1)
        return len(self.outbox.pending())


def _reader(context: PcscContext, pattern: str) -> str:
    return context.find_reader(pattern)


def build_station(config: Config,
                  after_commit: Callable[[State], None] | None = None,
                  on_event: Callable[[Issuance, str], None] | None = None) -> Station:
    data = config.data_path
    data.mkdir(parents=True, exist_ok=True)
    journal = Journal(data / "journal.sqlite")
    outbox = Outbox(journal)
    cms = CmsClient(config.cms.url, config.station.id,
                    connect_timeout=config.cms.connect_timeout,
                    read_timeout=config.cms.read_timeout)
    printer = Printer.open(config.printer.device, poll_interval=config.printer.poll_interval,
                           panel_pause=config.printer.panel_pause)
    context = PcscContext()
    encoder = _reader(context, config.readers.encoder)
    keys: KeyService
    if config.keys.service == "software":
        keys = SoftwareKeyService(config.keys.test_keys)
    else:
        psam = _reader(context, config.readers.psam)

        def open_psam() -> PcscTransport:
            transport = PcscTransport(psam)
            try:
                transport.connect()
            except BaseException:
                transport.close()
                raise
            return transport

        keys = PsamKeyService(open_psam, test_pinpad_kek=config.keys.test_keys)

    devices = Devices(
        printer=printer,
        open_encoder=lambda: PcscTransport(encoder),
        wait_for_card=lambda timeout: context.wait_for_card(encoder, timeout),
        wait_for_removal=lambda timeout: context.wait_for_removal(encoder, timeout),
        keys=keys,
    )

    def deliver(record: dict, key: str) -> str:
        return cms.submit_return(ReturnRecord.from_dict(record), key)

    worker = ReturnWorker(outbox, deliver, base_delay=config.returns.base_delay,
                          max_delay=config.returns.max_delay)
    spec = PhotoSpec(min_bytes=config.photo.min_kb * 1024, max_bytes=config.photo.max_kb * 1024)
    pipeline = Pipeline(journal, outbox, cms, devices, data, photo_spec=spec, on_event=on_event,
                        after_commit=after_commit, wake_returns=worker.wake)
    window = _build_window(config, keys, cms)
    return Station(config, journal, outbox, cms, printer, keys, pipeline, worker, window, context)


def _build_window(config: Config, keys: KeyService, cms: CmsClient) -> Window:
    """Desk reader always (found when used); ID reader and PIN pad when configured."""
    pattern = config.readers.desk

    def open_desk() -> PcscTransport:
        # Not the station's context: pcsc-lite serialises the calls on one context, and the
        # pipeline's card-presence waits hold it for up to a second at a time.
        with PcscContext() as lookup:
            return PcscTransport(lookup.find_reader(pattern))

    return Window(config, WindowServices(open_desk, keys, cms), keys)
