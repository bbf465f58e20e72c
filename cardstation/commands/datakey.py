"""`cardstation datakey status [--config F]`: the station data key file (present, mode, current
and old keys) and which keys the journal's rows are sealed under. `cardstation datakey rotate
[--config F]` (server stopped): a new data key, every row resealed under it in batches
(progress on stderr), then the old key dropped; run again after an interruption, it continues
(cardstation.datakeys). Prints one JSON object; exit 0 done, 1 refused or failed, 2 usage or
missing input."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict

from cardstation.commands._maintenance import add_config, emit, run_guarded
from cardstation.config import Config


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("datakey", help="the data key that seals personal data: "
                                   "status, rotation")
    kinds = parser.add_subparsers(dest="datakey_command", metavar="ACTION")
    status = kinds.add_parser("status", help="the key file and the keys the journal uses")
    add_config(status)
    status.set_defaults(func=lambda args: run_guarded(args, _status))
    rotate = kinds.add_parser("rotate", help="a new data key; reseal every row (server "
                              "stopped)")
    add_config(rotate)
    rotate.set_defaults(func=lambda args: run_guarded(args, _rotate))
    parser.set_defaults(func=lambda args: parser.print_help(sys.stderr) or 2)


def _status(config: Config) -> int:
    from cardstation.datakeys import status

    out = status(config.data_path / "journal.sqlite")
    emit({"ok": bool(out["present"]), **out})
    return 0 if out["present"] else 1


def _progress(table: str, done: int, total: int) -> None:
    print(f"datakey rotate: {table} {done}/{total}", file=sys.stderr, flush=True)


def _rotate(config: Config) -> int:
    from cardstation.datakeys import rotate

    result = rotate(config.data_path / "journal.sqlite", progress=_progress)
    emit({"ok": True, **asdict(result),
          "message": f"every row is sealed under data key {result.current}; the old key is "
          "gone from data.key: make a new backup now (older backups need the old key file)"})
    return 0
