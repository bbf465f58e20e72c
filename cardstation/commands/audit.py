"""`cardstation audit verify`: check the audit log's hash chain.

Prints one JSON object {"ok", "records", "first_bad_line", "message"} on stdout. Exit codes:
0 the chain is intact, 1 it is broken (first_bad_line names the line), 2 the file is missing or
unreadable.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

DEFAULT_FILE = "var/station/audit.jsonl"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `audit verify [--file PATH]`."""
    parser = subparsers.add_parser("audit", help="check the audit log")
    actions = parser.add_subparsers(dest="audit_command", metavar="ACTION")
    verify_parser = actions.add_parser("verify", help="verify the audit log's hash chain")
    verify_parser.add_argument(
        "--file", default=DEFAULT_FILE, help=f"audit log (default {DEFAULT_FILE})"
    )
    verify_parser.set_defaults(func=run_verify)
    parser.set_defaults(func=_usage(parser))


def _usage(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    def show(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2

    return show


def run_verify(args: argparse.Namespace) -> int:
    """Verify `args.file`; print the JSON result; return 0 ok, 1 broken, 2 missing."""
    from cardstation.server.audit import verify

    try:
        result = verify(args.file)
    except FileNotFoundError:
        out = {"ok": False, "records": 0, "first_bad_line": None,
               "message": f"audit log {args.file} does not exist"}
        print(json.dumps(out, ensure_ascii=False), flush=True)
        return 2
    except OSError as exc:
        out = {"ok": False, "records": 0, "first_bad_line": None,
               "message": f"audit log {args.file} cannot be read: {exc.strerror}"}
        print(json.dumps(out, ensure_ascii=False), flush=True)
        return 2
    out = {"ok": result.ok, "records": result.records,
           "first_bad_line": result.first_bad_line, "message": result.message}
    print(json.dumps(out, ensure_ascii=False), flush=True)
    return 0 if result.ok else 1
