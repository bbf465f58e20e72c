"""`cardstation run ID_NUMBER...`: make cards with the pipeline in this process (no server).

Resumes unfinished jobs from the journal first, then makes one card per ID number, printing each
state as it is reached; waits for the returns to reach the CMS before it exits. Exit 0 when
every card is DONE. The gRPC server (`cardstation serve`) drives the same pipeline.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys

from cardstation import crash_hook


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run", help="make cards in this process (no server)")
    parser.add_argument("id_numbers", nargs="*", metavar="ID_NUMBER")
    parser.add_argument("--config", help="cardstation.toml (default: ./cardstation.toml)")
    parser.add_argument("--request-id-prefix", default=None,
                        help="make each job idempotent: request id = PREFIX + ID number")
    parser.add_argument("--returns-timeout", type=float, default=30.0,
                        help="seconds to wait for queued returns to reach the CMS")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cardstation import config as config_module
    from cardstation.drivers.redaction import mask_id_number
    from cardstation.personalization.journal import JournalError, State
    from cardstation.personalization.pipeline import IssuanceError
    from cardstation.personalization.ports.cms import CmsError
    from cardstation.personalization.private_files import PrivateFileError
    from cardstation.personalization.rules import check_id_number
    from cardstation.station import build_station, journal_refusal

    bad = {n: check_id_number(n.strip().upper()) for n in args.id_numbers}
    bad = {n: findings for n, findings in bad.items() if findings}
    if bad:  # before the CMS is asked for anything
        for number, findings in bad.items():
            print(f"run: {mask_id_number(number) if len(number) > 10 else number!r} is not an "
                  f"ID number ({'; '.join(f.message for f in findings)}) — type it again",
                  file=sys.stderr)
        return 2
    try:
        cfg = config_module.load(args.config)
    except config_module.ConfigError as exc:
        print(f"configuration: {exc}", file=sys.stderr)
        return 2

    def show(issuance: object, message: str, _fault: object = None,
             _committed: bool = False) -> None:
        print(f"{mask_id_number(issuance.id_number)} {issuance.state.value:<14} {message}",  # type: ignore[attr-defined]
              flush=True)

    try:
        station = build_station(cfg, after_commit=crash_hook.from_environment(), on_event=show)  # type: ignore[arg-type]
    except PrivateFileError as exc:
        print(f"data folder: {exc}", file=sys.stderr)
        return 2
    except JournalError as exc:  # refused before any card: never over a damaged journal
        print(f"run: {journal_refusal(exc)}", file=sys.stderr)
        return 2
    results: dict[str, str] = {}
    jobs: dict[str, str] = {}  # ID number -> issuance id
    try:
        station.worker.start()
        for issuance in station.pipeline.recover():
            jobs[issuance.id_number] = issuance.id
        for id_number in args.id_numbers:
            # opaque: a request id is stored and shown, an ID number must not be
            request = (f"{args.request_id_prefix}"
                       f"{hashlib.sha256(id_number.encode()).hexdigest()[:16]}"
                       if args.request_id_prefix else None)
            try:
                issuance = station.pipeline.create(id_number, client_request_id=request)
            except (CmsError, IssuanceError, ValueError) as exc:
                print(f"{mask_id_number(id_number)} not started: {exc}", file=sys.stderr)
                results[id_number] = "NOT_STARTED"
                continue
            jobs[id_number] = station.pipeline.run(issuance.id).id
        left = station.drain_returns(args.returns_timeout)
        for id_number, issuance_id in jobs.items():  # DONE follows the CMS's acknowledgement
            results[id_number] = station.journal.get(issuance_id).state.value
    finally:
        station.close()
    summary = {"cards": {mask_id_number(k): v for k, v in results.items()},
               "returns_pending": left}
    print(json.dumps(summary, ensure_ascii=False), flush=True)
    ok = all(v == State.DONE.value for v in results.values()) and left == 0
    return 0 if ok else 1
