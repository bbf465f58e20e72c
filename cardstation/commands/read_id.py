"""`cardstation read-id --port PATH_OR_URL`: read the resident ID card on a GA 467 reader.

Prints the card as one JSON object. The ID number is masked (110105********002X) unless
`--show-id` is given: the operator's own screen may show it, logs and pasted output should not.
The WLT photo is reported by size only (decoding it needs the reader vendor's library).
Exit codes: 0 card read, 1 reader or card error (`{"error": CLASS, "reason": REASON,
"message": ...}`; REASON is the window service's: NO_ID_CARD, IDREADER_NOT_RESPONDING, ...).
"""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `read-id` to the `cardstation` command line."""
    parser = subparsers.add_parser("read-id", help="read the ID card on a GA 467 reader (JSON)")
    parser.add_argument("--port", required=True,
                        help="serial port or pyserial URL of the reader (/dev/ttyUSB0, "
                             "/dev/pts/N of `cardstation sim idreader`, socket://host:port)")
    parser.add_argument("--baud", type=int, default=115200, help="line speed (default 115200)")
    parser.add_argument("--timeout", type=float, default=3.0,
                        help="seconds to wait for each reply (default 3)")
    parser.add_argument("--fingerprint", action="store_true",
                        help="also read the fingerprint block (command 30 10)")
    parser.add_argument("--show-id", action="store_true",
                        help="print the full ID number (for the operator's screen only)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Find, select and read the card; print JSON. 0 ok, 1 reader/card error."""
    from cardstation.drivers.idreader import Ga467Reader, IdReaderError
    from cardstation.drivers.redaction import redact

    try:
        with Ga467Reader(args.port, baudrate=args.baud, timeout=args.timeout) as reader:
            card = reader.read_id_card(with_fingerprint=args.fingerprint)
    except IdReaderError as exc:
        from cardstation.personalization.window import idreader_reason

        print(json.dumps({"error": type(exc).__name__, "reason": idreader_reason(exc),
                          "message": redact(str(exc))}, ensure_ascii=False))
        return 1
    print(json.dumps(card.to_dict(show_id=args.show_id), ensure_ascii=False))
    return 0
