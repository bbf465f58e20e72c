"""`cardstation card readers|read`: PC/SC readers and the card in one of them, as JSON."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    card = subparsers.add_parser("card", help="PC/SC readers and card reads (diagnosis)")
    actions = card.add_subparsers(dest="action", metavar="ACTION", required=True)
    readers = actions.add_parser("readers", help="list PC/SC readers and whether a card is in")
    readers.set_defaults(func=run_readers)
    read = actions.add_parser("read", help="read the basic information (iReadCardBas fields)")
    read.add_argument("--reader", default="Virtual PCD Desk 00 00",
                      help="reader name or regular expression")
    read.add_argument("--wait", type=float, default=0.0,
                      help="seconds to wait for a card to be inserted")
    read.set_defaults(func=run_read)


def run_readers(args: argparse.Namespace) -> int:
    from cardstation.drivers.pcsc.errors import PcscError
    from cardstation.drivers.pcsc.readers import PcscContext

    try:
        with PcscContext() as ctx:
            rows = [{"reader": r, "card_present": ctx.card_present(r)} for r in ctx.readers()]
    except PcscError as exc:
        print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
        return 1
    print(json.dumps({"readers": rows}, ensure_ascii=False))
    return 0


def run_read(args: argparse.Namespace) -> int:
    from cardstation.drivers.pcsc.errors import CardStatusError, PcscError
    from cardstation.drivers.pcsc.readers import PcscContext
    from cardstation.drivers.pcsc.ssc import SscCard
    from cardstation.drivers.pcsc.transport import PcscTransport

    try:
        with PcscContext() as ctx:
            reader = ctx.find_reader(args.reader)
            if args.wait:
                ctx.wait_for_card(reader, timeout=args.wait)
        with PcscTransport(reader) as transport:
            info = SscCard(transport).read_basic_info()
    except (PcscError, CardStatusError, ValueError) as exc:
        print(json.dumps({"error": type(exc).__name__, "message": str(exc)}, ensure_ascii=False))
        return 1
    out = {k: v for k, v in vars(info).items() if k != "extra"}
    out["iReadCardBas"] = info.to_pipe_string()
    print(json.dumps(out, ensure_ascii=False))
    return 0
