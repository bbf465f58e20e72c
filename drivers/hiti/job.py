"""The byte sequence of one print job, independent of I/O.

The order is gutenprint's (src/cups/backend_hiti.c hiti_main_loop, 2019 and 2024 versions):
SET_FORMAT -> START_JOB -> SET_HEATING {0, 1} (the printer's default heat tables; gutenprint
sends its own table instead when it has one) -> START_PAGE -> per panel (START_PANEL,
SEND_PANEL_DATA header, raw plane) -> END_PAGE -> END_JOB. The reference's section 7.2 put
START_JOB first; the public source is followed. The printer executes these steps one by one,
reading the reply of each frame; the benchmark sums their sizes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from cardstation.drivers.hiti.assumptions import PANEL_OPCODES, CardFormat, colorseq
from cardstation.drivers.hiti.frames import (
    HEATING_DEFAULT_TABLES,
    MAX_LINES_PER_CHUNK,
    Job,
    Opcode,
    build_bulk_header,
    build_command,
)
from cardstation.drivers.hiti.render import CardPanels


@dataclass(frozen=True)
class JobStep:
    """One write of the job. `kind`: a command frame (reply follows), a bulk header (ack
    follows) or raw plane data (no reply)."""

    kind: Literal["command", "bulk", "raw"]
    opcode: int
    data: bytes
    label: str


def format_payload(panels: CardPanels, ribbon_type: int) -> bytes:
    back = panels.back
    front = panels.front
    return CardFormat.build(
        {
            "sides": 2 if back is not None else 1,
            "ribbon_type": ribbon_type,
            "colorseq_front": colorseq(front.names),
            "colorseq_back": colorseq(back.names) if back is not None else 0,
            "cols": front.cols,
            "rows": front.rows,
        }
    )


def _command(op: Opcode | int, payload: bytes, label: str) -> JobStep:
    return JobStep("command", int(op), build_command(op, payload), label)


def job_steps(
    panels: CardPanels,
    jobid: int,
    ribbon_type: int,
    max_lines: int = MAX_LINES_PER_CHUNK,
) -> Iterator[JobStep]:
    """Every write of a print job in order."""
    job = Job.build({"jobid": jobid})
    yield _command(Opcode.SET_FORMAT, format_payload(panels, ribbon_type), "set format")
    yield _command(Opcode.START_JOB, job, "start job")
    yield _command(Opcode.SET_HEATING, HEATING_DEFAULT_TABLES, "default heat tables")
    yield _command(Opcode.START_PAGE, b"", "start page")
    for side, planes in panels.sides():
        side_name = "front" if side == 1 else "back"
        for name, plane in planes.panels():
            label = f"{side_name} {name}"
            yield _command(PANEL_OPCODES[side][name], b"", f"start panel {label}")
            cols = planes.cols
            for start in range(0, planes.rows, max_lines):
                lines = min(max_lines, planes.rows - start)
                chunk = plane[start * cols : (start + lines) * cols]
                header = build_bulk_header(len(chunk), start, lines)
                yield JobStep("bulk", int(Opcode.SEND_PANEL_DATA), header, f"data {label}")
                yield JobStep("raw", int(Opcode.SEND_PANEL_DATA), chunk, f"raw {label}")
    yield _command(Opcode.END_PAGE, b"", "end page")
    yield _command(Opcode.END_JOB, job, "end job")


def job_bytes(panels: CardPanels, jobid: int = 1, ribbon_type: int = 0) -> int:
    """Total bytes the host sends for one job."""
    return sum(len(step.data) for step in job_steps(panels, jobid, ribbon_type))
