"""`cardstation bench`: run every benchmark, print one JSON object per line on stdout."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import traceback

# (label, module, function) — each function returns a list of figure dicts.
BENCHMARKS = (
    ("pcsc", "cardstation.benchmarks.pcsc", "run"),
    ("printer", "cardstation.drivers.hiti.bench", "run_benchmarks"),
    ("face", "cardstation.benchmarks.face", "run_benchmarks"),
    ("intake", "cardstation.benchmarks.photo", "run"),
    ("pipeline", "cardstation.benchmarks.pipeline", "run"),
    ("grpc", "cardstation.benchmarks.grpc_api", "run"),
    ("bombs", "cardstation.benchmarks.bombs", "run"),
    ("console", "cardstation.benchmarks.console", "run"),
    ("startup", "cardstation.benchmarks.startup", "run"),
    ("journal", "cardstation.benchmarks.journal", "run"),
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="run the benchmarks, print JSON lines")
    parser.add_argument("--only", action="append", help="run only these areas (repeatable)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    failed = 0
    for label, module_name, function in BENCHMARKS:
        if args.only and label not in args.only:
            continue
        try:
            figures = getattr(importlib.import_module(module_name), function)()
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            failed += 1
            traceback.print_exc(file=sys.stderr)
            print(json.dumps({"name": f"{label}.error", "value": 1, "unit": "count",
                              "error": str(exc)}), flush=True)
            continue
        for figure in figures:
            print(json.dumps(figure, ensure_ascii=False), flush=True)
    return 1 if failed else 0
