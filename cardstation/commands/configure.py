"""`cardstation config check [--config FILE]`: every problem of the configuration at once (exit
0: fit to start, 1: problems, listed one per line with the remedy); `cardstation config sample`:
the commented sample for a real station, to copy and edit."""

from __future__ import annotations

import argparse
import sys

DEFAULT = "cardstation.toml"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("config", help="check the configuration, or print a sample")
    actions = parser.add_subparsers(dest="config_command", metavar="ACTION")
    check = actions.add_parser("check", help="list every problem of a configuration file")
    check.add_argument("--config", default=DEFAULT, help=f"the file (default ./{DEFAULT})")
    check.set_defaults(func=run_check)
    sample = actions.add_parser("sample", help="print a commented cardstation.toml for a real "
                                "station")
    sample.set_defaults(func=run_sample)
    parser.set_defaults(func=lambda args: parser.print_help(sys.stderr) or 2)


def run_check(args: argparse.Namespace) -> int:
    from cardstation.config_check import check_file

    problems = check_file(args.config)
    for problem in problems:
        print(f"✗ {problem}")
    if problems:
        print(f"{args.config}: {len(problems)} problem(s); the station will not start "
              "correctly until they are fixed", file=sys.stderr)
        return 1
    print(f"✓ {args.config}: no problems found (`cardstation doctor` checks the devices)")
    return 0


def run_sample(args: argparse.Namespace) -> int:
    from importlib import resources

    text = resources.files("cardstation").joinpath("samples/cardstation.toml").read_text(
        encoding="utf-8")
    sys.stdout.write(text)
    return 0
