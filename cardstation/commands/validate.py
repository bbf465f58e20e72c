"""`cardstation validate`: check application data offline and print the findings as JSON.

Prints one JSON object, `{"findings": [{"field", "code", "message"}, ...]}`, on stdout. Exit
codes follow cardstation.cli: 0 clean, 1 at least one finding, 2 usage error. Data that is
wrong (a bad sex code, a photo that is not a JPEG) is a finding; a --photo path that cannot be
read at all is a usage error (exit 2, message on stderr, nothing on stdout) because the command
could not look at the data it was asked to check. Input is validated as given: a lowercase x in
the ID number is reported, not silently fixed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

# The photo size specs by name; the rules (and the imaging library) load only when run.
PHOTO_SPECS = ("seed000", "seed001")


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `validate` subcommand to an argparse subparsers object."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "validate",
        help="check application data (ID number, name, card number, photo, codes)",
        description="Validate application fields offline; print findings as JSON. "
        "Exit 0 clean, 1 findings, 2 usage error.",
    )
    parser.add_argument("--id-number", help="18-character resident ID number (required "
                        "unless only --photo is checked)")
    parser.add_argument("--name", help="holder name (GBK, at most 50 bytes)")
    parser.add_argument("--card-number", help="9-character card number, e.g. BA0010547")
    parser.add_argument("--card-id-code", help="card identification code, 32 hex digits")
    parser.add_argument("--photo", type=Path, metavar="FILE", help="holder photo (JPEG)")
    parser.add_argument(
        "--photo-spec",
        choices=sorted(PHOTO_SPECS),
        default="seed000",
        help="photo size limits: seed000 = 14-70 KB (default), seed001 = 15-60 KB",
    )
    parser.add_argument("--birth-date", metavar="YYYYMMDD")
    parser.add_argument("--sex", help="1 male, 2 female, 9 unspecified")
    parser.add_argument("--nation", metavar="NN", help="GB 3304 two-digit code")
    parser.add_argument("--region", metavar="RRRRRR", help="birthplace, GB/T 2260 code")
    parser.set_defaults(func=run)
    return parser


_OTHER_FIELDS = ("name", "card_number", "card_id_code", "birth_date", "sex", "nation", "region")


def run(args: argparse.Namespace) -> int:
    """Validate the fields in `args`, print the JSON findings, return the exit code."""
    if args.id_number is None and (args.photo is None or any(
            getattr(args, name) is not None for name in _OTHER_FIELDS)):
        # a photo alone can be checked (`cardstation photo normalize`'s output); the other
        # fields are judged against the ID number
        print("cardstation validate: error: the following arguments are required: "
              "--id-number (only --photo may be checked without it)", file=sys.stderr)
        return 2
    photo: bytes | None = None
    if args.photo is not None:
        try:
            photo = args.photo.read_bytes()
        except OSError as exc:
            print(
                f"cardstation validate: error: cannot read --photo {args.photo}: "
                f"{exc.strerror or exc}",
                file=sys.stderr,
            )
            return 2
    from cardstation.personalization.rules import (
        PHOTO_SPEC_SEED_000,
        PHOTO_SPEC_SEED_001,
        check_photo,
    )
    from cardstation.personalization.validation import validate_application

    specs = {"seed000": PHOTO_SPEC_SEED_000, "seed001": PHOTO_SPEC_SEED_001}
    if args.id_number is None:
        assert photo is not None
        findings = check_photo(photo, specs[args.photo_spec])
        _emit(findings)
        return 1 if findings else 0
    findings = validate_application(
        args.id_number,
        name=args.name,
        card_number=args.card_number,
        card_id_code=args.card_id_code,
        photo=photo,
        photo_spec=specs[args.photo_spec],
        birth_date=args.birth_date,
        sex=args.sex,
        nation=args.nation,
        region=args.region,
    )
    _emit(findings)
    return 1 if findings else 0


def _emit(findings: list[Any]) -> None:
    # ASCII-only JSON so output survives any terminal or pipe encoding.
    json.dump({"findings": [f.to_dict() for f in findings]}, sys.stdout)
    sys.stdout.write("\n")
