"""`cardstation restore --from DIR [--force] [--config F]` (server stopped): put a backup back in
place of the journal, audit log and key (see cardstation.restore). Refuses while the server
runs, when the backup does not verify, and, without --force, when the current journal holds
returns the CMS has not acknowledged that the backup lacks. The replaced files are kept in
<data_dir>/replaced-<time>/. Prints one JSON object; exit 0 restored, 1 refused or failed."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

from cardstation.commands._maintenance import add_config, emit, run_guarded
from cardstation.config import Config


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("restore", help="restore a backup (server stopped)")
    parser.add_argument("--from", dest="source", required=True, help="the backup folder")
    parser.add_argument("--force", action="store_true",
                        help="restore even though returns not yet acknowledged would be lost")
    add_config(parser)
    parser.set_defaults(func=lambda args: run_guarded(args, lambda c: _run(args, c)))


def _run(args: argparse.Namespace, config: Config) -> int:
    from cardstation.restore import restore

    result = restore(config, Path(args.source), force=args.force)
    message = "restored; start the station again"
    if result.lost_returns:
        message += (f"; {len(result.lost_returns)} return(s) not in the backup were given up "
                    "(--force): their cards' data must be returned to the CMS again")
    emit({"ok": True, **asdict(result), "message": message})
    return 0
