"""`cardstation photo normalize IN OUT [--whiten]`: a picture file to a card photo.

Prints one JSON object: on success `{"ok": true, "out", "bytes", "quality", "whitened",
"background": {...}}` (exit 0); on a refusal `{"ok": false, "code", "cause", "remedy"}` (exit 1);
an unreadable input path or bad configuration exits 2. The result goes to OUT only when the
photo was accepted; `cardstation validate --photo OUT` checks it as the station will.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

from cardstation.commands._maintenance import add_config, emit, run_guarded
from cardstation.config import Config


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("photo", help="normalise a holder photo (face, crop, "
                                   "background, JPEG size)")
    sub = parser.add_subparsers(dest="photo_command", metavar="ACTION", required=True)
    norm = sub.add_parser("normalize", aliases=["normalise"],
                          help="a picture (JPEG, PNG) to a 358x441 card photo, or the reason "
                          "it cannot be one")
    norm.add_argument("input", type=Path, metavar="IN")
    norm.add_argument("output", type=Path, metavar="OUT")
    norm.add_argument("--whiten", action="store_true",
                      help="replace the background by white (check the result before use)")
    add_config(norm)
    norm.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return run_guarded(args, lambda config: _run(args, config))


def _run(args: argparse.Namespace, config: Config) -> int:
    try:
        data = args.input.read_bytes()
    except OSError as exc:
        emit({"ok": False, "message": f"cannot read {args.input}: {exc.strerror or exc}"})
        return 2
    return _normalise(data, args.output, config, whiten=args.whiten)


def _normalise(data: bytes, out: Path, config: Config, *, whiten: bool) -> int:
    from cardstation.personalization.photo import PhotoRefused, normalise_file, photo_spec

    spec = photo_spec(config.photo.min_kb, config.photo.max_kb)
    try:
        photo = normalise_file(data, spec, whiten_background=whiten)
    except PhotoRefused as refused:
        emit({"ok": False, "code": refused.code, "cause": refused.fault.cause,
              "remedy": refused.fault.remedy})
        return 1
    try:
        out.write_bytes(photo.jpeg)
    except OSError as exc:
        emit({"ok": False, "message": f"cannot write {out}: {exc.strerror or exc}"})
        return 2
    figures = {k: round(v, 2) for k, v in asdict(photo.background).items()}
    emit({"ok": True, "out": str(out), "bytes": len(photo.jpeg), "quality": photo.quality,
          "whitened": photo.whitened, "background": figures})
    return 0
