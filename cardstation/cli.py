"""The `cardstation` command line: a thin dispatcher over subcommand modules.

Each module in `cardstation.commands` exposes `register(subparsers)`, which adds its parser and
sets `func` (a callable taking the parsed namespace and returning an exit code). Exit codes:
0 success, 1 the command ran and found a problem, 2 usage error.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from cardstation import __version__

# Subcommand modules, in the order `--help` lists them.
COMMAND_MODULES = (
    "validate",
    "photo",
    "run",
    "serve",
    "client",
    "console",
    "window",
    "intake",
    "audit",
    "configure",
    "doctor",
    "token",
    "backup",
    "restore",
    "compact",
    "datakey",
    "retention",
    "report",
    "read_id",
    "sim",
    "cms",
    "printer",
    "card",
    "demo",
    "bench",
    "install",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cardstation",
        description="Social-security-card instant-issuance station.",
    )
    parser.add_argument("--version", action="version", version=f"cardstation {__version__}")
    parser.add_argument(
        "--log-level", default="WARNING", type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        help="logging level (DEBUG, INFO, WARNING, ERROR)"
    )
    parser.add_argument("--log-file", help="also log to this file (rotated at 10 MB, 9 kept, "
                        "mode 0600), e.g. /var/log/cardstation/cardstation.log")
    parser.add_argument("--log-json", action="store_true",
                        help="log JSON lines (at, level, logger, message) instead of text")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"cardstation.commands.{name}")
        module.register(subparsers)
    return parser


def _answer_version(argv: Sequence[str]) -> None:
    """`cardstation [options] --version`: answered before the subcommands' parsers are built
    (building them is most of the command's time). Anything else (an option value, a command
    before it) is left to the full parser, which answers the same."""
    for arg in argv:
        if arg == "--version":
            print(f"cardstation {__version__}")
            raise SystemExit(0)  # as argparse's version action ends
        if not arg.startswith("-") or arg == "--":
            return


def main(argv: Sequence[str] | None = None) -> int:
    _answer_version(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    # after the parse: `--version` and `--help` end inside it, without the logging set-up
    from cardstation.drivers.redaction import redact
    from cardstation.logs import setup_logging

    try:
        setup_logging(args.log_level, file=args.log_file, json_lines=args.log_json)
    except OSError as exc:
        print(f"cardstation: --log-file {args.log_file}: cannot be written ({exc.strerror}) — "
              "give a file in a folder this user may write, e.g. "
              "/var/log/cardstation/cardstation.log", file=sys.stderr)
        return 2
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `cardstation ... | head`: the reader has all it wanted
        sys.stderr.close()
        return 0
    except Exception as exc:  # no traceback reaches an operator; DEBUG shows it for support
        logging.getLogger("cardstation").debug("command failed", exc_info=True)
        text = redact(str(exc)) or type(exc).__name__
        if " — " in text:  # the error names its cause and remedy already
            print(f"cardstation {args.command}: {text}", file=sys.stderr)
        else:
            print(f"cardstation {args.command}: {text} ({type(exc).__name__}) — check the "
                  "command's arguments and the station's configuration; if it persists, run "
                  "again with --log-level DEBUG and report the output to the station supplier",
                  file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
