"""Device side of the A5 protocol: one `Session` per connection turns bytes into model calls.

Bytes go in with `feed()` and replies come out with `take_output()`, so the same session serves
the pyusb backend (one bulk transfer at a time) and the TCP server (an arbitrary byte stream).
Malformed input never raises: the session logs it on the model (`protocol_errors`), answers
with a failed-status frame (assumptions.STATUS_BAD_FRAME) and resynchronises on the next 0xA5.
A job is assembled per session and discarded if the connection drops before END_PAGE.

Framing follows gutenprint `src/cups/backend_hiti.c` (2019 and 2024 versions): ordinary frames;
the panel-data header with its 24-bit length (0x8309); the heat-table header with its 24-bit
length and plane byte (0x8303); and the header-then-payload commands (0x830B, 0x830C, 0xE002),
acked after their 6-byte header, before the raw payload the length counts. A job is
SET_FORMAT -> START_JOB -> heat tables or SET_HEATING -> START_PAGE -> planes -> END_PAGE ->
END_JOB; SET_FORMAT may come before START_JOB, as gutenprint sends it. The queries gutenprint
sends when it connects are all answered (reply contents: assumptions.py).
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
    HEADER_THEN_PAYLOAD,
    HEAT_TABLE_HEADER_SIZE,
    LEN_OVERHEAD,
    MAX_JOB_ID,
    PRINT_COUNT_ARG,
    STAT_RIBBON_REMAINING,
    AlertList,
    BulkHeader,
    HeatTableHeader,
    Job,
    JobQueue,
    Opcode,
    RibbonInfo,
    RibbonType,
    StatsReply,
    build_command,
    build_status,
    bulk_data_len,
    heat_table_data_len,
)
from cardstation.drivers.hiti.state import TagState
from cardstation.simulators.printer.model import PrinterModel, PrintJob, Refused

log = logging.getLogger(__name__)

#: Largest payload accepted for an ordinary (non-bulk) command.
MAX_PAYLOAD = 1024
#: Largest raw payload accepted after a heat-table or header-then-payload header.
MAX_RAW_PAYLOAD = 1 << 20
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
class _Raw:
    """The raw payload of a heat-table or header-then-payload command, after its ack."""

    cmd: int
    key: int  # plane for 0x8303, 0 otherwise
    remaining: int
    data: bytearray = field(default_factory=bytearray)


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
        self._raw: _Raw | None = None
        self._job: _JobState | None = None
        #: SET_FORMAT sent before START_JOB (gutenprint's order) waits here for the job.
        self._format: object | None = None
        #: Raw payloads received per (command, plane): heat tables, tone curves, voltages.
        self.uploads: dict[tuple[int, int], bytes] = {}
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
            Opcode.CLEAN_PATH: self._clean_path,
            Opcode.MOVE_TO_CONTACT: self._model_op(lambda: self.model.move_to_contact()),
            Opcode.MOVE_TO_HOPPER: self._model_op(lambda: self.model.eject()),
            Opcode.MOVE_TO_EJECT_BOX: self._model_op(lambda: self.model.eject(reject=True)),
            Opcode.START_JOB: self._start_job,
            Opcode.SET_FORMAT: self._set_format,
            Opcode.START_PAGE: self._start_page,
            Opcode.END_PAGE: self._end_page,
            Opcode.END_JOB: self._end_job,
            Opcode.QUERY_JOBS: self._query_jobs,
            Opcode.SET_HEATING: self._set_heating(2),
            Opcode.SET_COLOR_HEATING: self._set_heating(3),
            Opcode.GET_PRINT_COUNT: self._print_count,
            Opcode.GET_UNKNOWN_8010: self._fixed(asm.UNKNOWN_8010_REPLY),
            Opcode.GET_CALIBRATION: self._fixed(asm.CALIBRATION_REPLY),
            Opcode.GET_PID_REGION: self._fixed(asm.PID_REGION_REPLY),
            Opcode.GET_HIGHLIGHT_ADJ: self._fixed(asm.HIGHLIGHT_ADJ_REPLY),
            Opcode.GET_DEVICE_INFO: self._fixed(asm.DEVICE_INFO_REPLY),
            Opcode.GET_TL_VOLTAGE: self._fixed(asm.TL_VOLTAGE_REPLY),
            Opcode.GET_OPTIONS: self._fixed(asm.OPTIONS_REPLY),
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
        self._raw = None
        self._format = None

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
            if self._raw is not None:
                self._take_raw()
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
            if cmd == Opcode.SEND_HEAT_TABLE:
                if len(buf) < HEAT_TABLE_HEADER_SIZE:
                    return
                frame = bytes(buf[:HEAT_TABLE_HEADER_SIZE])
                del buf[:HEAT_TABLE_HEADER_SIZE]
                self._heat_table_header(frame)
                continue
            if cmd in HEADER_THEN_PAYLOAD:
                del buf[:HEADER_SIZE]
                self._raw_header(cmd, length - LEN_OVERHEAD, status)
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

    # -- header-then-payload and heat tables ---------------------------------------------------
    def _raw_header(self, cmd: int, size: int, status: int) -> None:
        self.model.command_log.append(cmd)
        if status != CMD_STATUS_OK or not 0 <= size <= MAX_RAW_PAYLOAD:
            self._error(cmd, f"malformed 0x{cmd:04X} header: status 0x{status:02X}, {size} bytes")
            return
        self._reply(cmd)  # the host sends the payload only after this ack
        self._raw = _Raw(cmd, 0, size)
        if size == 0:
            self._finish_raw()

    def _heat_table_header(self, frame: bytes) -> None:
        cmd = int(Opcode.SEND_HEAT_TABLE)
        self.model.command_log.append(cmd)
        try:
            hdr = HeatTableHeader.parse(frame)
        except ConstructError as exc:
            self._error(cmd, f"malformed heat table header: {exc}")
            return
        size = heat_table_data_len(hdr)
        if not 0 <= size <= MAX_RAW_PAYLOAD:
            self._error(cmd, f"heat table header announces {size} bytes")
            return
        self._reply(cmd)
        self._raw = _Raw(cmd, hdr.plane, size)
        if size == 0:
            self._finish_raw()

    def _take_raw(self) -> None:
        raw = self._raw
        assert raw is not None
        n = min(raw.remaining, len(self._in))
        raw.data += self._in[:n]
        del self._in[:n]
        raw.remaining -= n
        if raw.remaining == 0:
            self._finish_raw()

    def _finish_raw(self) -> None:
        raw = self._raw
        assert raw is not None
        self.uploads[(raw.cmd, raw.key)] = bytes(raw.data)
        self._raw = None

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
            if self._job.lines[bulk.key] >= self._job.fmt.rows:  # type: ignore[union-attr]
                self.model.plane_received()

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
        if not 1 <= job.jobid <= MAX_JOB_ID:  # gutenprint keeps ids in 1..0x7FFF
            raise ValueError(f"job id {job.jobid} outside 1..0x{MAX_JOB_ID:04X}")
        self.model.clear_latched("CommandSequenceError", "RibbonTypeMismatch")
        self._job = _JobState(job.jobid, fmt=self._format)
        self._format = None
        return Job.build({"jobid": job.jobid})

    def _set_format(self, payload: bytes) -> bytes:
        """SET_FORMAT before START_JOB (gutenprint's order) or inside a job before START_PAGE."""
        fmt = asm.CardFormat.parse(payload)
        if fmt.sides not in (1, 2) or not 0 < fmt.cols <= 2048 or not 0 < fmt.rows <= 2048:
            raise ValueError(f"unsupported format {dict(fmt)}")
        job = self._job
        if job is None:
            self._format = fmt
        elif job.page_open:
            raise _SequenceError(Opcode.SET_FORMAT, "SET_FORMAT inside an open page")
        else:
            job.fmt = fmt
        return b""

    def _set_heating(self, size: int) -> Callable[[bytes], bytes]:
        """SET_HEATING (2 args, gutenprint sends {0, 1} = default tables) or the CS
        SET_COLOR_HEATING (3 args); both inside a job, before START_PAGE."""

        def handler(payload: bytes) -> bytes:
            job = self._need_job(Opcode.SET_HEATING, "colour/heating setting")
            if len(payload) != size:
                raise ValueError(f"{len(payload)} bytes, expected {size}")
            if job.page_open:
                raise _SequenceError(Opcode.SET_HEATING, "heating setting inside an open page")
            return b""

        return handler

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
            if job.panel in job.lines:  # started again: a resend of the whole plane
                job.lines[job.panel] = 0
            self.model.plane_restarted()
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
        # Only the ribbon-remaining record: gutenprint reads only the first one (frames.py).
        ribbon = self.model.ribbon
        records = [{"type": STAT_RIBBON_REMAINING, "value": ribbon.remaining if ribbon else 0}]
        return StatsReply.build({"count": len(records), "records": records})

    def _print_count(self, payload: bytes) -> bytes:
        if payload != bytes([PRINT_COUNT_ARG]):
            raise ValueError(f"print count argument {payload.hex()}, expected 01")
        return self.model.print_count.to_bytes(4, "big")

    def _fixed(self, reply: bytes) -> Callable[[bytes], bytes]:
        def handler(payload: bytes) -> bytes:
            return reply

        return handler

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

    def _clean_path(self, payload: bytes) -> bytes:
        if len(payload) != 1:  # one argument (gutenprint backend_hiti.c 2024)
            raise ValueError(f"clean path takes one argument byte, got {payload.hex() or 'none'}")
        self.model.clean_path()
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
