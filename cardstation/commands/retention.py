"""`cardstation retention purge [--days N] [--config F]`: remove the personal fields of jobs
DONE or REJECTED more than `[station] personal_data_days` (or N) days ago, keeping what the
day's report and the reconciliation need (cardstation.retention.purge_personal). The server
does the same once a day; this runs it now (also while the server works). Prints one JSON
object; exit 0 done, 1 failed, 2 usage or missing input."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict

from cardstation.commands._maintenance import add_config, emit, run_guarded
from cardstation.config import Config


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("retention", help="purge personal data of old finished jobs")
    kinds = parser.add_subparsers(dest="retention_command", metavar="ACTION")
    purge = kinds.add_parser("purge", help="purge now (finished jobs past personal_data_days)")
    purge.add_argument("--days", type=int, default=None,
                       help="this many days instead of [station] personal_data_days")
    add_config(purge)
    purge.set_defaults(func=lambda args: run_guarded(args, lambda c: _purge(args, c)))
    parser.set_defaults(func=lambda args: parser.print_help(sys.stderr) or 2)


def _purge(args: argparse.Namespace, config: Config) -> int:
    from cardstation.personalization.journal import Journal
    from cardstation.retention import purge_personal

    days = config.station.personal_data_days if args.days is None else args.days
    journal_path = config.data_path / "journal.sqlite"
    if not journal_path.is_file():
        raise FileNotFoundError(str(journal_path))
    with Journal(journal_path, timeout=5.0) as journal:
        result = purge_personal(journal, days)
    message = ("personal_data_days is 0: personal data is kept" if days == 0 else
               f"personal data of {result.jobs} finished job(s) older than {days} days removed")
    emit({"ok": True, "days": days, **asdict(result), "message": message})
    return 0
