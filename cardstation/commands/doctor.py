"""`cardstation doctor [--config FILE] [--lang en] [--json]`: look at every device and the CMS
now and print a checklist with a remedy for each failure (cardstation/doctor.py). Exit code 0:
the station can make cards; 1: it cannot (a row marked ✗); 2: the configuration is unusable."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("doctor", help="check every device and the CMS, with "
                                   "remedies (Chinese; --lang en)")
    parser.add_argument("--config", help="cardstation.toml (default ./cardstation.toml)")
    parser.add_argument("--lang", default="zh_CN", choices=["zh_CN", "en"])
    parser.add_argument("--json", action="store_true", help="the rows as JSON lines")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cardstation import config as config_module
    from cardstation.doctor import can_issue, render, run_checks

    try:
        cfg = config_module.load(args.config)
    except config_module.ConfigError as exc:
        print(f"doctor: {exc} — run `cardstation config check` for every problem",
              file=sys.stderr)
        return 2
    rows = run_checks(cfg)
    if args.json:
        for r in rows:
            print(json.dumps({"check": r.key, "status": r.status, "detail": r.detail,
                              "remedy": r.remedy.get(args.lang, ""), "blocks": r.blocks},
                             ensure_ascii=False))
    else:
        print(render(rows, args.lang))
    return 0 if can_issue(rows) else 1
