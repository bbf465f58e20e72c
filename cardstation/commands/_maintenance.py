"""What the maintenance commands (backup, restore, compact, report) share: the configuration
option, one JSON object on stdout, and their errors turned into a result with a remedy."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from cardstation.config import Config, ConfigError, load


def add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="cardstation.toml (default: ./cardstation.toml)")


def emit(out: dict[str, Any]) -> None:
    print(json.dumps(out, ensure_ascii=False, indent=2), flush=True)


def run_guarded(args: argparse.Namespace, body: Callable[[Config], int]) -> int:
    """Run `body` with the configuration; an expected failure is a JSON result (exit 1, or 2
    for a configuration or a missing file), never a traceback."""
    from cardstation.backup import BackupError
    from cardstation.personalization.journal import JournalError

    try:
        config = load(args.config)
    except ConfigError as exc:
        emit({"ok": False, "message": str(exc)})
        return 2
    try:
        return body(config)
    except FileNotFoundError as exc:
        emit({"ok": False, "message": f"{exc.filename or exc} does not exist: check the path "
              "and [station] data_dir"})
        return 2
    except (BackupError, JournalError, OSError, ValueError) as exc:
        emit({"ok": False, "message": str(exc)})
        return 1
