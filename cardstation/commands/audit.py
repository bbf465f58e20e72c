"""`cardstation audit verify` and `cardstation audit restart`: the audit log's keyed chain.

`verify` checks every line's MAC under the audit key and the sequence, then compares the file's
tail with the head recorded in the journal. It prints one JSON object {"ok", "records",
"first_bad_line", "seq", "problem", "head_seq", "message"} on stdout. Exit codes: 0 intact,
1 broken or truncated (first_bad_line / seq name the first bad line, problem what is wrong with
it), 2 the file, key or journal is missing or unreadable, 3 the file is from before keying.

`restart` (server stopped) sets the current file aside as evidence and clears the recorded
head, so the next start begins a new chain: the remedy once a broken file has been kept.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEFAULT_FILE = "var/station/audit.jsonl"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `audit verify|restart [--file PATH] [--key PATH] [--journal PATH]`."""
    parser = subparsers.add_parser("audit", help="check the audit log")
    actions = parser.add_subparsers(dest="audit_command", metavar="ACTION")
    verify_parser = actions.add_parser("verify", help="verify the audit log's keyed chain")
    restart_parser = actions.add_parser("restart", help="set a broken audit log aside and "
                                        "begin a new chain at the next start")
    for sub in (verify_parser, restart_parser):
        sub.add_argument("--file", default=DEFAULT_FILE,
                         help=f"audit log (default {DEFAULT_FILE})")
        sub.add_argument("--journal", help="journal holding the head "
                         "(default: journal.sqlite beside the audit log)")
    verify_parser.add_argument("--key", help="audit key file "
                               "(default: audit.key beside the audit log)")
    verify_parser.set_defaults(func=run_verify)
    restart_parser.set_defaults(func=run_restart)
    parser.set_defaults(func=_usage(parser))


def _usage(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    def show(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2

    return show


def _print(out: dict[str, Any]) -> None:
    print(json.dumps(out, ensure_ascii=False), flush=True)


def _unusable(message: str) -> int:
    _print({"ok": False, "records": 0, "first_bad_line": None, "seq": None,
            "problem": "unreadable", "head_seq": None, "message": message})
    return 2


def _journal_path(args: argparse.Namespace) -> Path:
    return Path(args.journal) if args.journal else Path(args.file).parent / "journal.sqlite"


def run_verify(args: argparse.Namespace) -> int:
    """Verify `args.file`; print the JSON result; return 0 ok, 1 broken, 2 missing, 3 unkeyed."""
    from cardstation.personalization.journal import JournalCorrupt
    from cardstation.server.audit import verify
    from cardstation.server.audit_head import read_head
    from cardstation.server.audit_key import AuditKeyError, read_key

    key_path = Path(args.key) if args.key else Path(args.file).parent / "audit.key"
    journal = _journal_path(args)
    if not Path(args.file).exists():
        return _unusable(f"audit log {args.file} does not exist")
    try:
        key = read_key(key_path)
    except AuditKeyError as exc:
        return _unusable(f"{exc} (give it with --key)")
    try:
        head = read_head(journal)
    except FileNotFoundError:
        return _unusable(f"journal {journal} does not exist: the recorded head is needed to "
                         "see a cut tail (give it with --journal)")
    except JournalCorrupt as exc:
        return _unusable(str(exc))
    try:
        result = verify(args.file, key, head)
    except OSError as exc:
        return _unusable(f"audit log {args.file} cannot be read: {exc.strerror}")
    _print({"ok": result.ok, "records": result.records, "first_bad_line": result.first_bad_line,
            "seq": result.seq, "problem": result.problem, "head_seq": result.head_seq,
            "message": result.message})
    if result.ok:
        return 0
    return 3 if result.problem == "unkeyed" else 1


def run_restart(args: argparse.Namespace) -> int:
    """Move the audit log aside and clear the head; print what was done."""
    from cardstation.personalization.journal import Journal, JournalError
    from cardstation.server.audit import set_aside
    from cardstation.server.audit_head import JournalHeadStore

    journal_path = _journal_path(args)
    if not journal_path.is_file():
        _print({"ok": False, "message": f"journal {journal_path} does not exist"})
        return 2
    path = Path(args.file)
    try:
        moved = str(set_aside(path, "restarted")) if path.exists() else None
        with Journal(journal_path, timeout=2.0) as journal:
            store = JournalHeadStore(journal)
            old = store.load()
            store.clear()
    except (OSError, JournalError) as exc:
        _print({"ok": False, "message": f"audit restart failed: {exc}"})
        return 2
    _print({"ok": True, "kept_as": moved, "old_head_seq": old.seq if old else None,
            "message": "the next start begins a new audit chain"})
    return 0
