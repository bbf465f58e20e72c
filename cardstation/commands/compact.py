"""`cardstation compact [--config F]` (server stopped): VACUUM the journal; every row, every
pending return, is checked to be there afterwards (see cardstation.restore.compact). Prints one
JSON object; exit 0 done, 1 refused (server running) or failed."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from cardstation.commands._maintenance import add_config, emit, run_guarded
from cardstation.config import Config


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("compact", help="compact the journal (server stopped)")
    add_config(parser)
    parser.set_defaults(func=lambda args: run_guarded(args, _run))


def _run(config: Config) -> int:
    from cardstation.restore import compact

    result = compact(config)
    emit({"ok": True, **asdict(result), "message": "journal compacted; no row was lost"})
    return 0
