"""Composition root: build the station (pipeline, outbox worker, devices) from configuration."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cardstation.config import Config, LaneSection
from cardstation.drivers.idreader import Ga467Reader
from cardstation.drivers.pcsc.errors import CardWaitTimeout, PcscError
from cardstation.drivers.pcsc.readers import PcscContext
from cardstation.drivers.pcsc.transport import PcscTransport
from cardstation.drivers.pinpad.pinpad import PinPad
from cardstation.drivers.tally import PCSC_CONTEXT_RESETS
from cardstation.personalization.faults import fault_of
from cardstation.personalization.journal import Journal, JournalError, State, StorageFault
from cardstation.personalization.keys.hsm import HsmKeyService, client_context
from cardstation.personalization.keys.service import (
    KeyService,
    PsamKeyService,
    SoftwareKeyService,
)
from cardstation.personalization.model import ReturnRecord
from cardstation.personalization.outbox import Outbox, ReturnWorker
from cardstation.personalization.pinentry import PinPadEntry
from cardstation.personalization.pipeline import ApplicantLocks, Devices, EventSink, Pipeline
from cardstation.personalization.ports.cms import Cms, CmsSettings
from cardstation.personalization.ports.printer import CardPrinter, PrinterSettings
from cardstation.personalization.private_files import (
    check_private_file,
    make_private_dir,
    make_private_files,
)
from cardstation.personalization.rules import PhotoSpec
from cardstation.personalization.window import (
    NO_IDREADER,
    NO_PINPAD,
    WindowError,
    WindowServices,
)
from cardstation.registries import cms_factory, printer_factory


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
        # told the PIN pad's prompt and the number of digits typed (WatchPinEntry)
        self.on_pin_progress: Callable[[str, int], None] | None = None

    def idreader(self) -> Ga467Reader:
        if not self.config.window.idreader:
            raise WindowError(NO_IDREADER, "no ID-card reader is configured",
                              "set [window] idreader in cardstation.toml to the reader's "
                              "serial port, then restart the station")
        if self._idreader is None:
            self._idreader = Ga467Reader(self.config.window.idreader,
                                         self.config.window.idreader_baud)
        return self._idreader

    def pins(self) -> PinPadEntry:
        if not self.config.window.pinpad:
            raise WindowError(NO_PINPAD, "no PIN pad is configured",
                              "set [window] pinpad in cardstation.toml to the PIN pad's "
                              "serial port, then restart the station")
        if self._pins is None:
            self._pins = PinPadEntry(PinPad(self.config.window.pinpad), self.keys.pinpad_kek(),
                                     timeout_s=self.config.window.pin_timeout)
        self._pins.on_progress = self.on_pin_progress
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


class Readers:
    """PC/SC readers by their configured name or pattern, looked up when used: a reader
    plugged in after start-up is found, and one that is missing is reported when it is needed
    (not by a start-up crash). The context is made again after pcscd restarts."""

    def __init__(self) -> None:
        self._context: PcscContext | None = None
        self._names: dict[str, str] = {}
        self._lock = threading.Lock()
        try:  # made now when pcscd answers, later when it does not yet
            self._context = PcscContext()
        except PcscError:
            self._context = None

    def context(self) -> PcscContext:
        with self._lock:
            if self._context is None:
                self._context = PcscContext()
            return self._context

    def find(self, pattern: str) -> str:
        """The reader's name; looked up once, and again after a PC/SC error."""
        name = self._names.get(pattern)
        if name is not None:
            return name
        # On a context of its own: pcsc-lite runs one call at a time per context, and the
        # card-presence waits hold the long-lived one for up to a second.
        with PcscContext() as lookup:
            name = lookup.find_reader(pattern)
        self._names[pattern] = name
        return name

    def wait_for_card(self, pattern: str, timeout: float) -> None:
        self._waiting(self.context().wait_for_card, pattern, timeout)

    def wait_for_removal(self, pattern: str, timeout: float) -> None:
        self._waiting(self.context().wait_for_removal, pattern, timeout)

    def _waiting(self, wait: Callable[[str, float], object], pattern: str,
                 timeout: float) -> None:
        try:
            wait(self.find(pattern), timeout)
        except PcscError as exc:
            if not isinstance(exc, CardWaitTimeout):
                PCSC_CONTEXT_RESETS.add("readers")
                self.close()  # the reader may have gone: look it up again next time
            raise

    def close(self) -> None:
        with self._lock:
            context, self._context = self._context, None
            self._names.clear()
        if context is not None:
            try:
                context.close()
            except PcscError:
                pass


@dataclass
class Lane:
    """One printer with its chip encoder, and the pipeline that drives them (a lane)."""

    name: str
    printer: CardPrinter
    pipeline: Pipeline
    encoder: str  # the encoder's PC/SC reader name or pattern
    device: str  # the printer's address (usb://..., socket://...)
    model: str
    # its own PC/SC context for the card-presence waits: pcsc-lite runs one call at a time per
    # context, and one lane's wait must not hold up another's
    readers: Readers | None = None


@dataclass
class Station:
    config: Config
    journal: Journal
    outbox: Outbox
    cms: Cms
    printer: CardPrinter  # the first lane's (a station with one printer has one lane)
    keys: KeyService
    pipeline: Pipeline  # the first lane's: every job is opened through it
    worker: ReturnWorker
    window: Window | None = None
    readers: Readers | None = None  # card-presence waits and reader look-ups
    lanes: list[Lane] = field(default_factory=list)

    def close(self) -> None:
        try:
            if self.window is not None:
                self.window.close()
            self.worker.stop()
            self.keys.close()
            for lane in self.lanes or []:
                lane.printer.close()
            if not self.lanes:
                self.printer.close()
            self.journal.close()
        finally:
            for lane in self.lanes:
                if lane.readers is not None and lane.readers is not self.readers:
                    lane.readers.close()
            if self.readers is not None:
                self.readers.close()

    def drain_returns(self, timeout: float = 30.0) -> int:
        """Deliver due returns now until none is pending or `timeout` passes; the count left."""
        deadline = time.monotonic() + timeout
        while self.outbox.pending() and time.monotonic() < deadline:
            if not self.worker.run_once():
                time.sleep(0.1)
        return len(self.outbox.pending())


def journal_refusal(exc: JournalError) -> str:
    """Why the station does not start on its journal, for the operator: a damaged, empty or
    unreadable file names itself and the remedy; a locked or full one says what to free."""
    if isinstance(exc, StorageFault):
        return f"the journal cannot be opened: {fault_of(exc).message}"
    return str(exc)


def build_hsm_key_service(config: Config) -> HsmKeyService:
    """The remote encryption machine of `[keys]` (TLS; a client certificate when given)."""
    k = config.keys
    return HsmKeyService(k.hsm_address, client_context(k.hsm_ca, k.hsm_cert, k.hsm_key),
                         system_id=k.hsm_system_id,
                         terminal_code=k.hsm_terminal or config.station.id,
                         key_address=k.hsm_key_address, timeout=k.hsm_timeout,
                         test_pinpad_kek=k.test_keys)


def build_station(config: Config,
                  after_commit: Callable[[State], None] | None = None,
                  on_event: EventSink | None = None) -> Station:
    """Everything of one station. Devices are reached when used, so a station whose printer
    or readers are missing still starts and says what is missing."""
    data = config.data_path
    make_private_dir(data)  # 0700: the journal, outbox and previews hold personal data
    journal = Journal(data / "journal.sqlite")
    make_private_files(data / f"journal.sqlite{suffix}" for suffix in ("", "-wal", "-shm"))
    outbox = Outbox(journal)
    cms: Cms = cms_factory(config.cms.kind)(CmsSettings(
        config.cms.url, config.station.id, connect_timeout=config.cms.connect_timeout,
        read_timeout=config.cms.read_timeout, tls_ca=config.cms.tls_ca,
        tls_cert=config.cms.tls_cert, tls_key=config.cms.tls_key,
        token=_read_secret(config.cms.token_file, "[cms] token_file"),
        options=dict(config.cms.options)))
    readers = Readers()
    keys: KeyService
    if config.keys.service == "software":
        keys = SoftwareKeyService(config.keys.test_keys)
    elif config.keys.service == "hsm":
        keys = build_hsm_key_service(config)
    else:
        def open_psam() -> PcscTransport:
            transport = PcscTransport(readers.find(config.readers.psam))
            try:
                transport.connect()
            except BaseException:
                transport.close()
                raise
            return transport

        keys = PsamKeyService(open_psam, test_pinpad_kek=config.keys.test_keys)

    def deliver(record: dict, key: str) -> str:
        return cms.submit_return(ReturnRecord.from_dict(record), key)

    worker = ReturnWorker(outbox, deliver, base_delay=config.returns.base_delay,
                          max_delay=config.returns.max_delay)
    spec = PhotoSpec(min_bytes=config.photo.min_kb * 1024, max_bytes=config.photo.max_kb * 1024)
    locks = ApplicantLocks()  # one admission per applicant across every printer

    def lane_of(section: LaneSection, waits: Readers) -> Lane:
        printer: CardPrinter = printer_factory(section.model)(PrinterSettings(
            section.device, poll_interval=section.poll_interval,
            panel_pause=section.panel_pause, options=dict(section.options)))
        encoder = section.encoder
        devices = Devices(
            printer=printer,
            open_encoder=lambda: PcscTransport(waits.find(encoder)),
            wait_for_card=lambda timeout: waits.wait_for_card(encoder, timeout),
            wait_for_removal=lambda timeout: waits.wait_for_removal(encoder, timeout),
            keys=keys,
        )
        pipeline = Pipeline(journal, outbox, cms, devices, data, photo_spec=spec,
                            on_event=on_event, after_commit=after_commit,
                            wake_returns=worker.wake,
                            storage_reserve=config.station.min_free_mb * 1_000_000,
                            lane=section.name, applicant_locks=locks)
        return Lane(section.name, printer, pipeline, encoder, section.device, section.model,
                    waits)

    lanes = [lane_of(section, readers if index == 0 else Readers())
             for index, section in enumerate(config.lanes)]
    first = lanes[0].pipeline
    # DONE follows the CMS's acknowledgement; a refusal for good fails the job (settle_return)
    worker.on_delivered = lambda entry: first.settle_return(entry.issuance_id)
    worker.on_failed = first.note_return_attempt
    window = _build_window(config, keys, cms)
    return Station(config, journal, outbox, cms, lanes[0].printer, keys, first, worker, window,
                   readers, lanes)


def _read_secret(path: str, what: str) -> str:
    """A secret kept in a file of its own (0600), e.g. the CMS's bearer token; "" when none."""
    if not path:
        return ""
    check_private_file(path, what)
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"{what} {path} cannot be read ({exc.strerror})") from None


def _build_window(config: Config, keys: KeyService, cms: Cms) -> Window:
    """Desk reader always (found when used); ID reader and PIN pad when configured."""
    pattern = config.readers.desk

    def open_desk() -> PcscTransport:
        # Not the station's context: pcsc-lite serialises the calls on one context, and the
        # pipeline's card-presence waits hold it for up to a second at a time.
        with PcscContext() as lookup:
            return PcscTransport(lookup.find_reader(pattern))

    return Window(config, WindowServices(open_desk, keys, cms), keys)
