"""`cardstation printer ...`: talk to the CS-220e directly (maintenance and diagnosis).

  printer status     identity, busy flag, alerts (with vendor codes and remedies), card position
  printer ribbon     ribbon type, prints remaining, ribbon chip
  printer feed       card to the contact station (进卡)
  printer eject      card to the output hopper
  printer reject     card to the reject box
  printer calibrate  calibrate the ribbon sensor (the remedy for colour offset)

Each prints one JSON object. Exit code 0 when the printer did it, 1 on a device fault (JSON with
the error name, vendor code and remedy).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

DEFAULT_DEVICE = "usb://0d16:030a"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("printer", help="HiTi CS-220e status and maintenance")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    helps = {
        "status": "identity, status, alerts, card position",
        "ribbon": "ribbon type, remaining prints, ribbon chip",
        "feed": "move a card to the contact station",
        "eject": "move the card to the output hopper",
        "reject": "move the card to the reject box",
        "calibrate": "calibrate the ribbon sensor",
    }
    for name, text in helps.items():
        sub = actions.add_parser(name, help=text)
        sub.add_argument(
            "--device",
            default=os.environ.get("CARDSTATION_PRINTER", DEFAULT_DEVICE),
            help="device URL: usb://0d16:030a[?serial=SN] or socket://HOST:PORT "
            "(default $CARDSTATION_PRINTER or %(default)s)",
        )
        sub.add_argument("--timeout", type=float, default=None,
                         help="seconds to wait for a move or calibration")  # fmt: skip
        sub.set_defaults(func=run)


def _status(p: Any) -> dict[str, Any]:
    """Identity, status with its alerts, where the card is, and the supplies: the ribbon (type,
    prints left, of a full roll's assumed prints, its chip) and the printer's print count."""
    from cardstation.drivers.hiti.assumptions import RIBBON_CAPACITY

    ribbon = p.ribbon()
    capacity = RIBBON_CAPACITY.get(ribbon.type)
    supplies = {"ribbon": ribbon.to_dict(), "ribbon_capacity": capacity,
                "ribbon_remaining_ratio": None if ribbon.remaining is None or not capacity
                else round(min(1.0, ribbon.remaining / capacity), 3),
                "cards_printed": p.print_count()}
    return {
        "device": p.transport.url,
        "identity": p.identity().to_dict(),
        "status": p.status().to_dict(),
        "card_position": p.card_position().label,
        "supplies": supplies,
    }


def _move(method: str) -> Callable[[Any], dict[str, Any]]:
    def action(p: Any) -> dict[str, Any]:
        position = getattr(p, method)()
        return {"ok": True, "card_position": position.label}

    return action


_ACTIONS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "status": _status,
    "ribbon": lambda p: {"ribbon": p.ribbon().to_dict()},
    "feed": _move("move_to_contact"),
    "eject": _move("eject"),
    "reject": _move("reject"),
    "calibrate": lambda p: {"ok": True, "calibration": p.calibrate_ribbon_sensor().to_dict()},
}


def run(args: argparse.Namespace) -> int:
    from cardstation.drivers.hiti.errors import PrinterError
    from cardstation.drivers.hiti.printer import Printer

    try:
        printer = Printer.open(args.device)
    except PrinterError as exc:
        print(json.dumps(exc.to_dict(), ensure_ascii=False))
        return 1
    if args.timeout is not None:
        printer.timeouts.move = printer.timeouts.reset = args.timeout
    try:
        result = _ACTIONS[args.action](printer)
    except PrinterError as exc:
        print(json.dumps(exc.to_dict(), ensure_ascii=False))
        return 1
    finally:
        try:
            printer.close()
        except PrinterError as exc:
            print(f"closing the printer: {exc}", file=sys.stderr)
    print(json.dumps(result, ensure_ascii=False))
    return 0
