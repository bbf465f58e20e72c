"""Device side of the A5 protocol: one `Session` per connection turns bytes into model calls.

Bytes go in with `feed()` and replies come out with `take_output()`, so the same session serves
the pyusb backend (one bulk transfer at a time) and the TCP server (an arbitrary byte stream).
Malformed input never raises: the session logs it on the model (`protocol_errors`), answers
with a failed-status frame (assumptions.STATUS_BAD_FRAME) and resynchronises on the next 0xA5.
A job is assembled per session and discarded if the connection drops before END_PAGE.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from construct import ConstructError

from cardstation.drivers.hiti import assumptions as asm
from cardstation.drivers.hiti.alerts import NO_CS_CODE, AlertCategory, by_name
from cardstation.drivers.hiti.frames import (
    BULK_HEADER_SIZE,
    CMD_STATUS_OK,
    FRAME_HEADER,
    HEADER_SIZE,
    LEN_OVERHEAD,
    STAT_RIBBON_REMAINING,
    AlertList,
    BulkHeader,
    Job,
    JobQueue,
    Opcode,
    RibbonInfo,
    RibbonType,
    StatsReply,
    build_command,
    build_status,
    bulk_data_len,
)
from cardstation.drivers.hiti.state import TagState
from cardstation.simulators.printer.model import PrinterModel, PrintJob, Refused

log = logging.getLogger(__name__)

#: Largest payload accepted for an ordinary (non-bulk) command.
MAX_PAYLOAD = 1024
_ALERT_OPS = {int(c): c for c in AlertCategory}


class _Reject(Exception):
    def __init__(self, reason: str, status: int = asm.STATUS_REJECTED):
        super().__init__(reason)
        self.status = status


@dataclass
class _JobState:
    jobid: int
    fmt: object | None = None
    page_open: bool = False
    panel: tuple[int, str] | None = None
    planes: dict[int, dict[str, bytearray]] = field(default_factory=dict)
    lines: dict[tuple[int, str], int] = field(default_factory=dict)


@dataclass
class _Bulk:
    target: bytearray
    offset: int
    remaining: int
    key: tuple[int, str]
    num_lines: int


class Session:
    """One host connection to the simulated printer."""

    def __init__(self, model: PrinterModel) -> None:
        self.model = model
        self._in = bytearray()
        self._out = bytearray()
        self._bulk: _Bulk | None = None
        self._job: _JobState | None = None
        self._junk = False
        self.output_ready = threading.Condition()
        self._handlers: dict[int, Callable[[bytes], bytes]] = {
            Opcode.GET_SUMMARY: self._summary,
            Opcode.GET_SERIAL: self._serial,
            Opcode.GET_STATUS: self._status,
            Opcode.GET_INPUT_STATUS: self._input_status,
            Opcode.GET_STATS: self._stats,
            Opcode.GET_SUPPLIES: self._supplies,
            Opcode.GET_RIBBON_VENDOR: self._ribbon_vendor,
            Opcode.GET_SENSOR_CAL: self._sensor_cal,
            Opcode.RESET: self._reset,
            Opcode.CLEAN_PATH: self._model_op(lambda: self.model.clean_path()),
            Opcode.MOVE_TO_CONTACT: self._model_op(lambda: self.model.move_to_contact()),
            Opcode.MOVE_TO_HOPPER: self._model_op(lambda: self.model.eject()),
            Opcode.MOVE_TO_EJECT_BOX: self._model_op(lambda: self.model.eject(reject=True)),
            Opcode.START_JOB: self._start_job,
            Opcode.SET_FORMAT: self._set_format,
            Opcode.START_PAGE: self._start_page,
            Opcode.END_PAGE: self._end_page,
            Opcode.END_JOB: self._end_job,
            Opcode.QUERY_JOBS: self._query_jobs,
        }
        if asm.MOVE_TO_PRINT_POSITION is not None:
            self._handlers[asm.MOVE_TO_PRINT_POSITION] = self._model_op(
                lambda: self.model.move_to_print()
            )
        for op in asm.PANEL_BY_OPCODE:
            self._handlers[op] = self._start_panel(op)
        for op in _ALERT_OPS:
            self._handlers[op] = self._alerts(op)

    # -- byte interface ----------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        """Take bytes from the host and process every complete frame."""
        self._in += data
        try:
            self._process()
        except Exception as exc:  # a simulator bug must not kill the connection or the model
            log.exception("printer simulator session failed")
            self._in.clear()
            self._bulk = None
            self._error(0, f"internal simulator error: {exc!r}")

    @property
    def has_output(self) -> bool:
        return bool(self._out)

    def take_output(self, limit: int | None = None) -> bytes:
        with self.output_ready:
            n = len(self._out) if limit is None else min(limit, len(self._out))
            out = bytes(self._out[:n])
            del self._out[:n]
            return out

    def close(self) -> None:
        """Connection gone: a job not yet started (no END_PAGE) is discarded."""
        if self._job is not None and self._job.page_open:
            log.info("printer simulator: job %s discarded (connection lost)", self._job.jobid)
        self._job = None
        self._bulk = None

    # -- framing -----------------------------------------------------------------------------
    def _reply(self, cmd: int, payload: bytes = b"", status: int = CMD_STATUS_OK) -> None:
        with self.output_ready:
            self._out += build_command(cmd, payload, status)
            self.output_ready.notify_all()

    def _error(self, cmd: int, message: str, status: int = asm.STATUS_BAD_FRAME) -> None:
        self.model.note_protocol_error(message)
        self._reply(cmd, b"", status)

    def _process(self) -> None:
        buf = self._in
        while buf:
            if self._bulk is not None:
                self._take_bulk()
                continue
            if buf[0] != FRAME_HEADER:
                nxt = buf.find(FRAME_HEADER)
                dropped = len(buf) if nxt < 0 else nxt
                bad = bytes(buf[: min(dropped, 8)]).hex()
                del buf[:dropped]
                if not self._junk:  # one error reply per run of junk
                    self._error(0, f"malformed frame: bad header byte(s) {bad}, expected 0xA5")
                self._junk = nxt < 0
                continue
            self._junk = False
            if len(buf) < HEADER_SIZE:
                return
            length = int.from_bytes(buf[1:3], "big")
            status = buf[3]
            cmd = int.from_bytes(buf[4:6], "big")
            if cmd == Opcode.SEND_PANEL_DATA:
                if len(buf) < BULK_HEADER_SIZE:
                    return
                frame = bytes(buf[:BULK_HEADER_SIZE])
                del buf[:BULK_HEADER_SIZE]
                self._bulk_header(frame)
                continue
            if length < LEN_OVERHEAD:
                del buf[:HEADER_SIZE]
                self._error(0, f"malformed frame: length {length} shorter than 3")
                continue
            if length - LEN_OVERHEAD > MAX_PAYLOAD:
                del buf[:HEADER_SIZE]
                self._error(cmd, f"malformed frame: length {length} too large for 0x{cmd:04X}")
                continue
            if len(buf) < 3 + length:
                return
            payload = bytes(buf[HEADER_SIZE : 3 + length])
            del buf[: 3 + length]
            if status != CMD_STATUS_OK:
                self._error(cmd, f"malformed frame: host status byte 0x{status:02X}, not 0x50")
                continue
            self._dispatch(cmd, payload)

    def _dispatch(self, cmd: int, payload: bytes) -> None:
        self.model.command_log.append(cmd)
        handler = self._handlers.get(cmd)
        if handler is None:
            self._error(cmd, f"unknown command 0x{cmd:04X}")
            return
        try:
            reply = handler(payload)
        except _SequenceError as exc:
            self._sequence_error(cmd, str(exc))
            return
        except _Reject as exc:
            log.info("printer simulator refused 0x%04X: %s", cmd, exc)
            self._reply(cmd, b"", exc.status)
            return
        except Refused as exc:
            if exc.alert is not None:
                self.model.latch(exc.alert)
            log.info("printer simulator refused 0x%04X: %s", cmd, exc)
            self._reply(cmd, b"", asm.STATUS_REJECTED)
            return
        except (ConstructError, ValueError, IndexError) as exc:
            self._error(cmd, f"bad payload for 0x{cmd:04X}: {exc}")
            return
        self._reply(cmd, reply)

    # -- bulk data ---------------------------------------------------------------------------
    def _bulk_header(self, frame: bytes) -> None:
        cmd = int(Opcode.SEND_PANEL_DATA)
        try:
            hdr = BulkHeader.parse(frame)
        except ConstructError as exc:
            self._error(cmd, f"malformed panel data header: {exc}")
            return
        data_len = bulk_data_len(hdr)
        job = self._job
        if job is None or not job.page_open or job.panel is None or job.fmt is None:
            self._sequence_error(cmd, "panel data outside a started panel")
            return
        cols, rows = job.fmt.cols, job.fmt.rows  # type: ignore[attr-defined]
        if (
            data_len != hdr.num_lines * cols
            or hdr.start_line + hdr.num_lines > rows
            or data_len <= 0
        ):
            self._error(
                cmd,
                f"panel data header inconsistent: {data_len} bytes for {hdr.num_lines} lines "
                f"from line {hdr.start_line} at {cols}x{rows}",
            )
            return
        side, name = job.panel
        plane = job.planes.setdefault(side, {}).setdefault(name, bytearray(cols * rows))
        self._bulk = _Bulk(plane, hdr.start_line * cols, data_len, job.panel, hdr.num_lines)
        self._reply(cmd)

    def _take_bulk(self) -> None:
        bulk = self._bulk
        assert bulk is not None and self._job is not None
        n = min(bulk.remaining, len(self._in))
        bulk.target[bulk.offset : bulk.offset + n] = self._in[:n]
        del self._in[:n]
        bulk.offset += n
        bulk.remaining -= n
        if bulk.remaining == 0:
            self._job.lines[bulk.key] = self._job.lines.get(bulk.key, 0) + bulk.num_lines
            self._bulk = None

    # -- job ---------------------------------------------------------------------------------
    def _sequence_error(self, cmd: int, message: str) -> None:
        self.model.latch(by_name("CommandSequenceError"))
        self.model.note_protocol_error(f"command sequence error: {message}")
        self._reply(cmd, b"", asm.STATUS_REJECTED)

    def _need_job(self, cmd: int, what: str) -> _JobState:
        job = self._job
        if job is None:
            raise _SequenceError(cmd, f"{what} without START_JOB")
        return job

    def _start_job(self, payload: bytes) -> bytes:
        job = Job.parse(payload)
        self.model.clear_latched("CommandSequenceError", "RibbonTypeMismatch")
        self._job = _JobState(job.jobid)
        return Job.build({"jobid": job.jobid})

    def _set_format(self, payload: bytes) -> bytes:
        job = self._need_job(Opcode.SET_FORMAT, "SET_FORMAT")
        fmt = asm.CardFormat.parse(payload)
        if fmt.sides not in (1, 2) or not 0 < fmt.cols <= 2048 or not 0 < fmt.rows <= 2048:
            raise ValueError(f"unsupported format {dict(fmt)}")
        job.fmt = fmt
        return b""

    def _start_page(self, payload: bytes) -> bytes:
        job = self._need_job(Opcode.START_PAGE, "START_PAGE")
        if job.fmt is None:
            raise _SequenceError(Opcode.START_PAGE, "START_PAGE before SET_FORMAT")
        job.page_open = True
        return b""

    def _start_panel(self, op: int) -> Callable[[bytes], bytes]:
        def handler(payload: bytes) -> bytes:
            job = self._need_job(op, "START_PANEL")
            if not job.page_open:
                raise _SequenceError(op, "START_PANEL before START_PAGE")
            job.panel = asm.PANEL_BY_OPCODE[op]
            return b""

        return handler

    def _end_page(self, payload: bytes) -> bytes:
        job = self._need_job(Opcode.END_PAGE, "END_PAGE")
        if not job.page_open or job.fmt is None:
            raise _SequenceError(Opcode.END_PAGE, "END_PAGE without START_PAGE")
        fmt = job.fmt
        for key in ((s, n) for s, planes in job.planes.items() for n in planes):
            if job.lines.get(key, 0) < fmt.rows:  # type: ignore[attr-defined]
                raise _SequenceError(Opcode.END_PAGE, f"panel {key} incomplete at END_PAGE")
        if not job.planes:
            raise _SequenceError(Opcode.END_PAGE, "END_PAGE without panel data")
        print_job = PrintJob(
            jobid=job.jobid,
            ribbon_type=fmt.ribbon_type,  # type: ignore[attr-defined]
            cols=fmt.cols,  # type: ignore[attr-defined]
            rows=fmt.rows,  # type: ignore[attr-defined]
            sides={s: {n: bytes(p) for n, p in planes.items()} for s, planes in job.planes.items()},
        )
        job.page_open = False
        job.planes = {}
        self.model.start_print(print_job)
        return b""

    def _end_job(self, payload: bytes) -> bytes:
        job = self._need_job(Opcode.END_JOB, "END_JOB")
        parsed = Job.parse(payload)
        if parsed.jobid != job.jobid:
            raise _SequenceError(Opcode.END_JOB, f"END_JOB {parsed.jobid} for job {job.jobid}")
        self._job = None
        return Job.build({"jobid": parsed.jobid})

    def _query_jobs(self, payload: bytes) -> bytes:
        jobs = self.model.jobs()[:4]
        rows = [{"lun": 0, "jobid": j, "status": s} for j, s in jobs]
        rows += [{"lun": 0, "jobid": 0, "status": 0}] * (4 - len(rows))
        return JobQueue.build({"count": len(jobs), "rows": rows})

    # -- queries -----------------------------------------------------------------------------
    def _summary(self, payload: bytes) -> bytes:
        return asm.build_summary(self.model.model_name, self.model.firmware)

    def _serial(self, payload: bytes) -> bytes:
        return self.model.serial.encode("ascii")[: asm.SERIAL_LENGTH].ljust(
            asm.SERIAL_LENGTH, b"\x00"
        )

    def _status(self, payload: bytes) -> bytes:
        return build_status(**self.model.status_flags())

    def _alerts(self, op: int) -> Callable[[bytes], bytes]:
        category = _ALERT_OPS[op]

        def handler(payload: bytes) -> bytes:
            found = self.model.alerts_in(category)
            return AlertList.build(
                {
                    "count": len(found),
                    "alerts": [
                        {"code24": a.code24, "aux": 0, "ascii": a.cs_code or NO_CS_CODE}
                        for a in found
                    ],
                }
            )

        return handler

    def _input_status(self, payload: bytes) -> bytes:
        m = self.model
        flags = 0
        if not m.input_cards:
            flags |= asm.INPUT_FLAG_HOPPER_EMPTY
        if len(m.reject_box) >= m.reject_box_capacity:
            flags |= asm.INPUT_FLAG_REJECT_FULL
        return asm.InputStatus.build(
            {
                "input_state": 1 if not m.input_cards else 0,
                "card_type": 2,  # PavoApi: chip 8-pin
                "card_position": m.device_position(),
                "flags": flags,
            }
        )

    def _stats(self, payload: bytes) -> bytes:
        ribbon = self.model.ribbon
        records = [
            {"type": asm.STAT_PRINT_COUNT, "value": self.model.print_count},
            {"type": STAT_RIBBON_REMAINING, "value": ribbon.remaining if ribbon else 0},
        ]
        return StatsReply.build({"count": len(records), "records": records})

    def _supplies(self, payload: bytes) -> bytes:
        ribbon = self.model.ribbon
        if ribbon is None:
            return RibbonInfo.build(
                {"unk": asm.encode_ribbon_tag(TagState.ABSENT), "type": RibbonType.NONE, "unk2": 0}
            )
        return RibbonInfo.build(
            {"unk": asm.encode_ribbon_tag(ribbon.tag), "type": ribbon.type, "unk2": 0}
        )

    def _ribbon_vendor(self, payload: bytes) -> bytes:
        ribbon = self.model.ribbon
        return (ribbon.vendor_code if ribbon else 0).to_bytes(2, "big")

    def _sensor_cal(self, payload: bytes) -> bytes:
        m = self.model
        dirt = m.sensor_dirt
        level = round(200 * (1 - dirt))
        return asm.SensorCalReply.build(
            {
                "take_level": level,
                "take_threshold": 100,
                "supply_level": level,
                "supply_threshold": 100,
                "mark_level": level,
                "mark_threshold": 100,
                "offset_um": round(m.sensor_offset_mm() * 1000),
                "dirt_percent": round(dirt * 100),
                "result": 0 if m.calibration_ok else 1,
            }
        )

    # -- operations --------------------------------------------------------------------------
    def _reset(self, payload: bytes) -> bytes:
        arg = payload[0] if payload else asm.RESET_FULL
        if arg not in (asm.RESET_FULL, asm.RESET_SOFT):
            raise ValueError(f"reset argument {arg}")
        self._job = None
        self.model.reset(full=arg == asm.RESET_FULL)
        return b""

    def _model_op(self, action: Callable[[], None]) -> Callable[[bytes], bytes]:
        def handler(payload: bytes) -> bytes:
            if payload != asm.MOVE_PAYLOAD:
                raise ValueError(f"unexpected payload {payload.hex()}")
            action()
            return b""

        return handler


class _SequenceError(_Reject):
    def __init__(self, cmd: int, message: str):
        super().__init__(message)
        self.cmd = cmd
