"""`cardstation demo`: a whole simulated station making a card, step by step."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="make one card on simulated devices")
    parser.add_argument("--output", default="var/demo", help="folder for previews and prints")
    parser.add_argument("--id-number", default="11010519491231002X",
                        help="sample applicant (the GB 11643 example, never a real person)")
    parser.add_argument("--console", action="store_true",
                        help="keep a simulated station and its web console running (Ctrl-C "
                             "stops both); prints the URL and a login token")
    parser.add_argument("--listen", default="127.0.0.1:8080",
                        help="where the console listens with --console")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cardstation.demo import run_console_demo, run_demo

    if args.console:
        return run_console_demo(args.output, args.listen)
    return run_demo(args.output, args.id_number)
