"""`cardstation report day [--date YYYY-MM-DD] [--format json|pdf] [--out FILE] [--read-printer]
[--config F]`: the day's reconciliation (cardstation.reconcile) as JSON (stdout, or FILE) or as
the hand-over sheet PDF to print and sign (cardstation.handover_pdf; default file
handover-<station>-<date>.pdf). The journal is only read, so it runs while the station works.
`--read-printer` also reads the printer's counters now (print count, ribbon left) and keeps the
reading in the journal, where the ribbon's count for a day is taken from (run it at the end of
each day's hand-over); the printer answers one program at a time, so use it with the server
stopped. Exit 0 written, 1 failed,
2 usage or no journal."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

from cardstation.commands._maintenance import add_config, emit, run_guarded
from cardstation.config import Config


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date: give YYYY-MM-DD") from None


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("report", help="the day's reconciliation and hand-over sheet")
    kinds = parser.add_subparsers(dest="report_command", metavar="REPORT")
    day = kinds.add_parser("day", help="cards, stock, ribbon and returns of one day")
    day.add_argument("--date", type=_day, default=None, help="YYYY-MM-DD (default: today)")
    day.add_argument("--format", choices=("json", "pdf"), default="json")
    day.add_argument("--out", help="file to write (json default: stdout; pdf default: "
                     "handover-<station>-<date>.pdf)")
    day.add_argument("--read-printer", action="store_true",
                     help="read the printer's counters now (server stopped)")
    add_config(day)
    day.set_defaults(func=lambda args: run_guarded(args, lambda c: _run(args, c)))
    parser.set_defaults(func=lambda args: parser.print_help(sys.stderr) or 2)


def _printer_now(config: Config) -> tuple[int | None, int | None, str]:
    from cardstation.personalization.ports.printer import PrinterSettings
    from cardstation.registries import printer_factory

    p = config.printer
    printer = printer_factory(p.model)(PrinterSettings(
        p.device, poll_interval=p.poll_interval, panel_pause=p.panel_pause,
        options=dict(p.options)))
    try:
        return printer.print_count(), printer.ribbon().remaining, ""
    except Exception as exc:  # an absent printer is a note in the report, not a failure
        return None, None, f"the printer was not read ({exc}); its counters are left out"
    finally:
        printer.close()


def _run(args: argparse.Namespace, config: Config) -> int:
    from cardstation.handover_pdf import render, sheet_of
    from cardstation.reconcile import day_report, record_reading

    day = args.date or date.today()
    journal = config.data_path / "journal.sqlite"
    count = ribbon = None
    note = ""
    if args.read_printer:
        count, ribbon, note = _printer_now(config)
        if not note:  # kept: the next day's report opens with it
            record_reading(journal, time.time(), count, ribbon)
    report = day_report(journal, day, config.station.id,
                        print_count_now=count, ribbon_remaining_now=ribbon)
    out: dict[str, Any] = {"ok": True, **report.to_dict()}
    if note:
        out["note"] = note
    if args.format == "pdf":
        path = Path(args.out or f"handover-{config.station.id}-{day.isoformat()}.pdf")
        render(sheet_of(report), path)
        emit({"ok": True, "pdf": str(path), "date": report.date, "made": report.made_count,
              "message": "hand-over sheet written: print it, count the cards, sign it",
              **({"note": note} if note else {})})
        return 0
    if args.out:
        Path(args.out).write_text(json.dumps(out, ensure_ascii=False, indent=2) + "\n",
                                  encoding="utf-8")
        emit({"ok": True, "json": args.out, "date": report.date})
        return 0
    emit(out)
    return 0
