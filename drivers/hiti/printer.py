"""The CS-220e printer API: identity, status, ribbon, card moves, print jobs, maintenance.

Every command is one A5 frame and one reply. Long operations (moves, printing, reset) are
followed by polling GET_STATUS until BUSY clears, with a deadline; any alert that blocks the
operation is raised as its named error (errors.py). Time is injectable (`clock`, `sleep`) so
tests run instantly against the simulator at speed 0.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from construct import ConstructError

from cardstation.drivers.hiti import alerts as alert_table
from cardstation.drivers.hiti import assumptions as asm
from cardstation.drivers.hiti.alerts import CATEGORY_FLAG, AlertCategory, AlertDef
from cardstation.drivers.hiti.assumptions import PANEL_BY_OPCODE
from cardstation.drivers.hiti.errors import (
    CommandRejected,
    PrinterError,
    PrinterNotConnected,
    PrinterProtocolError,
    PrinterTimeout,
    alert_error,
)
from cardstation.drivers.hiti.frames import (
    HEADER_SIZE,
    LEN_OVERHEAD,
    MAX_JOB_ID,
    PRINT_COUNT_ARG,
    STAT_RIBBON_REMAINING,
    STATUS_FAILED,
    AlertCS,
    Header,
    Job,
    JobQueue,
    Opcode,
    RibbonInfo,
    RibbonType,
    StatsReply,
    StatusSummary,
    build_command,
)
from cardstation.drivers.hiti.job import job_steps
from cardstation.drivers.hiti.render import CardPanels, render_panels
from cardstation.drivers.hiti.state import (
    AlertReport,
    CardPosition,
    Identity,
    PrinterStatus,
    RibbonStatus,
    SensorCalibration,
)
from cardstation.drivers.hiti.transport import Transport, open_transport

log = logging.getLogger(__name__)

Progress = Callable[[str, float], None]

_STATUS_FLAGS = ("busy", "power_on", "resend", "input", "jam", "supplies", "operator",
                 "service", "warning")  # fmt: skip
# A move does not need the ribbon: supplies alerts are reported by status(), not raised.
_MOVE_IGNORES = frozenset({AlertCategory.SUPPLIES})
# Maintenance is the remedy of faults (a reset clears a jam, a calibration a ribbon-search
# failure): it runs whatever alerts are up, and reports the ones left when it is done.
_MAINTENANCE_IGNORES = frozenset(AlertCategory)


@dataclass
class Timeouts:
    """Deadlines in seconds (reference section 7.5)."""

    reply: float = 5.0
    move: float = 30.0
    print: float = 120.0
    reset: float = 30.0
    clean: float = 90.0
    #: Per megabyte of bulk data on top of `reply`.
    per_mb: float = 2.0


#: Nominal durations, only used to report progress fractions while polling.
_EXPECTED = {"feed": 3.0, "move": 2.0, "eject": 2.0, "reject": 2.0, "print": 30.0,
             "reset": 8.0, "clean": 20.0}  # fmt: skip


class Printer:
    """A HiTi CS-220e on a transport."""

    def __init__(
        self,
        transport: Transport,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        poll_interval: float = 1.0,
        timeouts: Timeouts | None = None,
        panel_pause: float = 0.2,
    ) -> None:
        self.transport = transport
        self.clock = clock
        self.sleep = sleep
        self.poll_interval = poll_interval
        self.timeouts = timeouts or Timeouts()
        #: Pause after each plane, as the photo backend does (200 ms).
        self.panel_pause = panel_pause
        self._position = CardPosition.UNKNOWN
        self._jobid = 0
        self._open_args: tuple[str, Any] | None = None

    # -- life cycle --------------------------------------------------------------------------
    @classmethod
    def open(cls, url: str, backend: Any = None, **kwargs: Any) -> Printer:
        """Open the printer a device URL names (see transport.open_transport)."""
        printer = cls(open_transport(url, backend), **kwargs)
        printer._open_args = (url, backend)
        return printer

    def reconnect(self) -> None:
        """Reopen the transport (after a cable was pulled); the card position becomes unknown."""
        if self._open_args is None:
            raise PrinterError("reconnect() needs a printer made with Printer.open()")
        try:
            self.transport.close()
        except PrinterError:
            pass  # the old connection is dead anyway
        self.transport = open_transport(*self._open_args)
        self._position = CardPosition.UNKNOWN

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Printer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- framing -----------------------------------------------------------------------------
    def _write(self, data: bytes, extra: float = 0.0) -> None:
        # Strictly request then reply: bytes left over from an earlier reply (trailing noise
        # after a frame) would otherwise be read as the start of this command's reply.
        stale = self.transport.drop_buffered()
        if stale:
            log.debug("dropped %d stale bytes before writing to the printer", len(stale))
        self.transport.write(data, self.timeouts.reply + extra)

    def _read_reply(self, cmd: int, *, check: bool = True) -> tuple[int, bytes]:
        timeout = self.timeouts.reply
        head = self.transport.read_exact(HEADER_SIZE, timeout)
        try:
            hdr = Header.parse(head)
        except ConstructError as exc:
            self.transport.discard_input()
            raise PrinterProtocolError(
                f"malformed reply to 0x{cmd:04X}: bad frame header {head.hex()}"
            ) from exc
        if hdr.length < LEN_OVERHEAD:
            self.transport.discard_input()
            raise PrinterProtocolError(
                f"malformed reply to 0x{cmd:04X}: length {hdr.length} shorter than 3"
            )
        payload = self.transport.read_exact(hdr.length - LEN_OVERHEAD, timeout)
        if hdr.cmd != cmd:
            self.transport.discard_input()
            raise PrinterProtocolError(
                f"reply echoes command 0x{hdr.cmd:04X}, expected 0x{cmd:04X} "
                f"(status 0x{hdr.status:02X})"
            )
        if check and hdr.status & STATUS_FAILED:
            self._raise_failed(cmd, hdr.status)
        return hdr.status, payload

    def _exchange(self, cmd: int, payload: bytes = b"") -> bytes:
        self._write(build_command(cmd, payload))
        return self._read_reply(cmd)[1]

    def _parse(self, layout: Any, raw: bytes, cmd: int) -> Any:
        """`layout.parse(raw)`; a reply too short or malformed for it is the printer's
        protocol error, not a construct exception escaping the driver."""
        try:
            return layout.parse(raw)
        except ConstructError as exc:
            raise PrinterProtocolError(
                f"malformed reply to {_opname(cmd)}: {len(raw)} bytes do not fit its layout"
            ) from exc

    def _raise_failed(self, cmd: int, status: int) -> None:
        """The device failed a command: name the alert behind it if there is one."""
        name = _opname(cmd)
        if cmd != Opcode.GET_STATUS:
            try:
                _, defs = self._status_defs()
            except CommandRejected:
                defs = []
            blocking = [d for d in defs if d.blocks]
            if blocking:
                raise alert_error(blocking[0])
        meaning = "malformed or unknown frame" if status == asm.STATUS_BAD_FRAME else "refused"
        raise CommandRejected(
            f"printer rejected {name} (status 0x{status:02X}: {meaning})", None, status
        )

    # -- status ------------------------------------------------------------------------------
    def _status_defs(self) -> tuple[Any, list[AlertDef]]:
        raw = self._exchange(Opcode.GET_STATUS)
        if len(raw) < 3:
            raise PrinterProtocolError(f"status reply has {len(raw)} bytes, expected 3")
        summary = StatusSummary.parse(raw[:3])
        defs: list[AlertDef] = []
        for category in AlertCategory:  # declared in priority order
            if summary[CATEGORY_FLAG[category]]:
                defs.extend(self._alerts(category))
        return summary, defs

    def _alerts(self, category: AlertCategory) -> list[AlertDef]:
        raw = self._exchange(int(category))
        if not raw or raw[0] == 0:
            return []
        count = raw[0]
        size = (len(raw) - 1) // count
        found = []
        for i in range(count):
            item = raw[1 + i * size : 1 + (i + 1) * size]
            if size >= AlertCS.sizeof():
                parsed = self._parse(AlertCS, item, int(category))
                code24, cs = parsed.code24, parsed.ascii
            elif size >= 4:  # the photo-family 4-byte layout, no CS code
                code24, cs = int.from_bytes(item[:3], "big"), None
            else:
                raise PrinterProtocolError(f"alert list of {len(raw)} bytes for {count} alerts")
            found.append(alert_table.decode(code24, cs, category))
        return found

    def status(self) -> PrinterStatus:
        """Busy flag and the decoded alerts (named fault, vendor codes, remedy)."""
        summary, defs = self._status_defs()
        return PrinterStatus(
            busy=summary.busy,
            power_on=summary.power_on,
            resend=summary.resend,
            flags=tuple(f for f in _STATUS_FLAGS if summary[f]),
            alerts=tuple(_report(d) for d in defs),
        )

    def check(self, ignore: frozenset[AlertCategory] = frozenset()) -> PrinterStatus:
        """status(), raising the highest-priority alert not in `ignore`."""
        summary, defs = self._status_defs()
        for d in defs:
            if d.category not in ignore and d.blocks:
                raise alert_error(d)
        return PrinterStatus(
            summary.busy, summary.power_on, summary.resend,
            tuple(f for f in _STATUS_FLAGS if summary[f]), tuple(_report(d) for d in defs),
        )  # fmt: skip

    def wait_idle(
        self,
        step: str,
        timeout: float,
        progress: Progress | None = None,
        ignore: frozenset[AlertCategory] = frozenset(),
        job: int | None = None,
    ) -> PrinterStatus:
        """Poll until neither BUSY nor POWER-ON is set (and `job` left the queue); raise alerts
        and timeouts. gutenprint backend_hiti.c (2019 and 2024) waits on both bits."""
        start = self.clock()
        expected = _EXPECTED.get(step, 5.0)
        while True:
            st = self.check(ignore)
            queued = job is not None and self._job_queued(job)
            if not st.busy and not st.power_on and not queued:
                if progress:
                    progress(step, 1.0)
                return st
            elapsed = self.clock() - start
            if elapsed >= timeout:
                raise PrinterTimeout(f"printer still busy after {timeout:.0f} s ({step})")
            if progress:
                progress(step, min(0.99, elapsed / expected))
            self.sleep(self.poll_interval)

    def _job_queued(self, jobid: int) -> bool:
        raw = self._exchange(Opcode.QUERY_JOBS, _job_payload(0))
        queue = JobQueue.parse(raw.ljust(JobQueue.sizeof(), b"\x00"))
        rows = queue.rows[: min(queue.count, len(queue.rows))]
        for row in rows:
            if row.status == 0x80:
                self.check()
                raise PrinterError(f"print job {row.jobid} failed in the printer")
        return any(row.jobid == jobid for row in rows)

    # -- identity and supplies ---------------------------------------------------------------
    def identity(self) -> Identity:
        try:
            model, firmware = asm.parse_summary(self._exchange(Opcode.GET_SUMMARY))
        except ValueError as exc:
            raise PrinterProtocolError(f"malformed reply to GET_SUMMARY: {exc}") from None
        raw = self._exchange(Opcode.GET_SERIAL, bytes([asm.SERIAL_ARG]))
        serial = raw.split(b"\x00", 1)[0].decode("ascii", "replace").strip()
        return Identity(model=model, firmware=firmware, serial=serial)

    def statistics(self) -> dict[int, int]:
        raw = self._exchange(Opcode.GET_STATS)
        stats = self._parse(StatsReply, raw, Opcode.GET_STATS)
        return {r.type: r.value for r in stats.records}

    def print_count(self) -> int:
        """Cards printed in the printer's life (a job counts when it finishes), read as
        gutenprint reads it: ERDC_RPC 0x8005 with argument 01, a u32be (backend_hiti.c
        hiti_query_counter, 2024). PrinterProtocolError on a short reply."""
        raw = self._exchange(Opcode.GET_PRINT_COUNT, bytes([PRINT_COUNT_ARG]))
        if len(raw) < 4:
            raise PrinterProtocolError(f"print count reply has {len(raw)} bytes, expected 4")
        return int.from_bytes(raw[:4], "big")

    def ribbon(self) -> RibbonStatus:
        """Ribbon type, prints remaining and whether its chip was read."""
        info = self._parse(RibbonInfo, self._exchange(Opcode.GET_SUPPLIES, b"\x00"),
                           Opcode.GET_SUPPLIES)
        try:
            type_name = RibbonType(info.type).name
        except ValueError:
            type_name = f"unknown ({info.type})"
        remaining = self.statistics().get(STAT_RIBBON_REMAINING)
        vendor_raw = self._exchange(Opcode.GET_RIBBON_VENDOR)
        vendor = int.from_bytes(vendor_raw[:2], "big") if len(vendor_raw) >= 2 else None
        return RibbonStatus(
            type=info.type,
            type_name=type_name,
            remaining=remaining,
            chip=asm.decode_ribbon_tag(info.unk),
            vendor_code=vendor,
        )

    # -- card position -----------------------------------------------------------------------
    @property
    def tracked_position(self) -> CardPosition:
        """Where the driver's own moves left the card."""
        return self._position

    def card_position(self) -> CardPosition:
        """The card position: queried (assumption: GET_INPUT_STATUS) and merged with tracking.

        The device reports a card that went into the output hopper or the reject box as "out";
        the driver's tracking keeps which box it was.
        """
        if not asm.CARD_POSITION_QUERY:
            return self._position
        raw = self._exchange(Opcode.GET_INPUT_STATUS)
        status = asm.InputStatus.parse(raw.ljust(asm.InputStatus.sizeof(), b"\x00"))
        reported = asm.decode_card_position(status.card_position)
        boxes = (CardPosition.OUTPUT_HOPPER, CardPosition.REJECT_BOX)
        if reported == CardPosition.OUT and self._position in boxes:
            return self._position
        self._position = reported
        return reported

    # -- moves -------------------------------------------------------------------------------
    def _move(
        self, op: int, target: CardPosition, step: str, progress: Progress | None
    ) -> CardPosition:
        self.wait_idle(step, self.timeouts.move, None, _MOVE_IGNORES)
        if progress:
            progress(step, 0.0)
        try:
            self._exchange(op, asm.MOVE_PAYLOAD)
            self.wait_idle(step, self.timeouts.move, progress, _MOVE_IGNORES)
        except PrinterError as exc:
            self._position = CardPosition.UNKNOWN
            if not isinstance(exc, PrinterNotConnected):
                self._refresh_position()
            raise
        self._position = target
        return target

    def _refresh_position(self) -> None:
        try:
            self.card_position()
        except PrinterError:
            self._position = CardPosition.UNKNOWN

    def move_to_contact(self, progress: Progress | None = None) -> CardPosition:
        """Feed a card (or bring the loaded one) to the contact encoder station (进卡)."""
        return self._move(Opcode.MOVE_TO_CONTACT, CardPosition.CONTACT, "feed", progress)

    def move_to_print_position(self, progress: Progress | None = None) -> CardPosition:
        """Move the card to the print position. Uses an ASSUMED opcode (see assumptions)."""
        if asm.MOVE_TO_PRINT_POSITION is None:
            raise PrinterError("no known command moves a card to the print position")
        return self._move(asm.MOVE_TO_PRINT_POSITION, CardPosition.PRINT, "move", progress)

    def eject(self, progress: Progress | None = None) -> CardPosition:
        """Card to the output hopper (a good card)."""
        return self._move(Opcode.MOVE_TO_HOPPER, CardPosition.OUTPUT_HOPPER, "eject", progress)

    def reject(self, progress: Progress | None = None) -> CardPosition:
        """Card to the reject box (any failure after feeding)."""
        return self._move(
            Opcode.MOVE_TO_EJECT_BOX, CardPosition.REJECT_BOX, "reject", progress
        )

    # -- printing ----------------------------------------------------------------------------
    def print_faces(self, front: Any, back: Any = None, progress: Progress | None = None,
                    *, back_colour: bool = True) -> int:
        """Render RGB faces (PIL images) and print them; see print_card. `back_colour=False`
        prints the back in resin K (and overcoat) only."""
        return self.print_card(render_panels(front, back, back_colour=back_colour), progress)

    def print_card(self, panels: CardPanels, progress: Progress | None = None) -> int:
        """Print one card (front, optional back) and wait until done. Returns the job id.

        The card stays at the print position; eject() or reject() it afterwards.
        """
        self.wait_idle("print", self.timeouts.move, None)
        ribbon_type = self._parse(RibbonInfo, self._exchange(Opcode.GET_SUPPLIES, b"\x00"),
                                  Opcode.GET_SUPPLIES).type
        self._jobid = self._jobid % MAX_JOB_ID + 1  # 1..0x7FFF, as gutenprint keeps them
        jobid = self._jobid
        steps = list(job_steps(panels, jobid, ribbon_type))
        raw_total = sum(len(s.data) for s in steps if s.kind == "raw") or 1
        sent = 0
        if progress:
            progress("upload", 0.0)
        try:
            for i, step in enumerate(steps):
                if step.kind == "raw":
                    self._send_plane(steps, i)
                    sent += len(step.data)
                    if progress:
                        progress("upload", sent / raw_total)
                else:
                    self._write(step.data)
                    self._read_reply(step.opcode)
            self._position = CardPosition.PRINT
            self.wait_idle("print", self.timeouts.print, progress, job=jobid)
        except PrinterError as exc:
            self._position = CardPosition.UNKNOWN
            if not isinstance(exc, PrinterNotConnected):
                self._refresh_position()
            raise
        return jobid

    def _send_plane(self, steps: list[Any], i: int) -> None:
        """Raw plane after its bulk header; while the printer asks for a resend, send the
        plane again from its START_PANEL: start-plane command, header, data (gutenprint
        backend_hiti.c hiti_main_loop, `goto resend_y` and friends, 2019 and 2024)."""
        step = steps[i]
        start = i
        while steps[start].kind != "command" or steps[start].opcode not in PANEL_BY_OPCODE:
            start -= 1
        for attempt in range(3):
            if attempt:
                log.warning("printer asked to resend %s", step.label)
                for again in steps[start:i]:
                    if again.kind == "raw":
                        self._write(again.data, self.timeouts.per_mb * len(again.data) / 1e6)
                    else:
                        self._write(again.data)
                        self._read_reply(again.opcode)
            self._write(step.data, self.timeouts.per_mb * len(step.data) / 1e6)
            if self.panel_pause:
                self.sleep(self.panel_pause)
            if not self.check().resend:  # an alert fails the job, as in gutenprint
                return
        raise PrinterError(f"printer kept asking to resend {step.label}")

    # -- maintenance -------------------------------------------------------------------------
    def reset(self, soft: bool = False, progress: Progress | None = None) -> PrinterStatus:
        """Reset the printer (a full reset also searches the ribbon and calibrates its sensor).

        A jammed card is cleared to the reject box by the printer.
        """
        arg = asm.RESET_SOFT if soft else asm.RESET_FULL
        if progress:
            progress("reset", 0.0)
        self._exchange(Opcode.RESET, bytes([arg]))
        st = self.wait_idle("reset", self.timeouts.reset, progress, _MAINTENANCE_IGNORES)
        self._refresh_position()
        return st

    def clean_card_path(self, progress: Progress | None = None) -> PrinterStatus:
        """Run the card-path cleaning cycle (a cleaning card must be loaded)."""
        self.wait_idle("clean", self.timeouts.move, None, _MAINTENANCE_IGNORES)
        self._exchange(Opcode.CLEAN_PATH, bytes([asm.CLEAN_PATH_ARG]))
        return self.wait_idle("clean", self.timeouts.clean, progress, _MAINTENANCE_IGNORES)

    def sensor_calibration(self) -> SensorCalibration:
        """Read the ribbon-sensor calibration values (layout: assumption)."""
        raw = self._exchange(Opcode.GET_SENSOR_CAL)
        c = asm.SensorCalReply.parse(raw.ljust(asm.SensorCalReply.sizeof(), b"\x00"))
        return SensorCalibration(
            take_level=c.take_level,
            take_threshold=c.take_threshold,
            supply_level=c.supply_level,
            supply_threshold=c.supply_threshold,
            mark_level=c.mark_level,
            mark_threshold=c.mark_threshold,
            offset_um=c.offset_um,
            dirt_percent=c.dirt_percent,
            ok=c.result == 0,
        )

    def calibrate_ribbon_sensor(self, progress: Progress | None = None) -> SensorCalibration:
        """Calibrate the ribbon mark sensor (the remedy for colour offset).

        Done by a full reset (assumption) and read back; a failed calibration raises
        RibbonTakeCalibrationFailed / RibbonSupplyCalibrationFailed.
        """
        self.reset(progress=progress)
        calibration = self.sensor_calibration()
        if not calibration.ok:
            self.check()  # raises the calibration alert the printer latched
        return calibration


def _job_payload(jobid: int) -> bytes:
    return Job.build({"jobid": jobid})


def _opname(cmd: int) -> str:
    try:
        return f"{Opcode(cmd).name} (0x{cmd:04X})"
    except ValueError:
        return f"0x{cmd:04X}"


def _report(d: AlertDef) -> AlertReport:
    return AlertReport(
        name=d.name,
        category=d.category.name.lower(),
        code24=d.code24,
        cs_code=d.cs_code,
        description=d.description,
        remedy=d.remedy,
        position=d.position,
        blocks=d.blocks,
    )
