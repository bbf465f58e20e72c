"""Window commands, clients of the station's WindowService:

  cardstation read-card                       the card in the desk reader (iReadCardBas fields)
  cardstation pin verify|change|unblock|reset the holder types on the station's PIN pad
  cardstation temp issue HOLDER_ID NAME [--agent-id ID --agent-name NAME] | rewrite | recall

PINs are never typed here or sent over the API: the station's PIN pad prompts the holder.
A failure prints `{"code", "reason", "message"}` on stderr and exits 1; the message is
"cause — remedy" and the reason is the window service's (README). A temporary issue that was
abandoned midway is either rolled back (PIN_ENTRY_CANCELLED, PIN_ENTRY_TIMEOUT,
TEMPORARY_ISSUE_ROLLED_BACK: start again) or left in a named state whose message says how to
finish it (TEMPORARY_ISSUE_INCOMPLETE, TEMPORARY_ISSUE_UNCONFIRMED,
TEMPORARY_RECALL_INCOMPLETE).
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # grpc is imported by the commands that call, not by `--help`
    import grpc

from .client import _call, _connection_args


def register(subparsers: argparse._SubParsersAction) -> None:
    read = subparsers.add_parser("read-card", help="read the card in the desk reader")
    _connection_args(read)
    read.set_defaults(func=run_read_card)

    pin = subparsers.add_parser("pin", help="PIN services (typed on the station's PIN pad)")
    pin.add_argument("action", choices=("verify", "change", "unblock", "reset"))
    _connection_args(pin)
    pin.set_defaults(func=run_pin)

    temp = subparsers.add_parser("temp", help="temporary cards (临时卡)")
    actions = temp.add_subparsers(dest="action", metavar="ACTION", required=True)
    issue = actions.add_parser("issue", help="issue a temporary card to a holder")
    issue.add_argument("holder_id")
    issue.add_argument("holder_name")
    issue.add_argument("--agent-id", default="", help="ID number of someone acting for them")
    issue.add_argument("--agent-name", default="")
    for name, helptext in (("rewrite", "the holder sets the PIN again"),
                           ("recall", "take a temporary card back")):
        sub = actions.add_parser(name, help=helptext)
        _connection_args(sub)
        sub.set_defaults(func=run_temp)
    _connection_args(issue)
    issue.set_defaults(func=run_temp)


def _print(message: Any) -> None:
    from google.protobuf.json_format import MessageToDict

    print(json.dumps(MessageToDict(message, preserving_proto_field_name=True),
                     ensure_ascii=False))


def _stub(ch: grpc.Channel) -> Any:
    from cardstation.protos.cardstation.v1 import window_pb2_grpc

    return window_pb2_grpc.WindowServiceStub(ch)


def run_read_card(args: argparse.Namespace) -> int:
    from cardstation.protos.cardstation.v1 import window_pb2 as wpb

    def action(ch: grpc.Channel, md: list) -> int:
        _print(_stub(ch).ReadCard(wpb.ReadCardRequest(), metadata=md, timeout=args.timeout))
        return 0

    return _call(args, action)


def run_pin(args: argparse.Namespace) -> int:
    from cardstation.protos.cardstation.v1 import window_pb2 as wpb

    calls = {
        "verify": ("VerifyPin", wpb.VerifyPinRequest()),
        "change": ("ChangePin", wpb.ChangePinRequest()),
        "unblock": ("UnblockPin", wpb.UnblockPinRequest()),
        "reset": ("ResetPin", wpb.ResetPinRequest()),
    }
    method, request = calls[args.action]

    def action(ch: grpc.Channel, md: list) -> int:
        if args.action != "unblock":
            print("the holder types the PIN on the PIN pad ...", flush=True)
        getattr(_stub(ch), method)(request, metadata=md, timeout=max(args.timeout, 120))
        print(json.dumps({"pin": args.action, "result": "ok"}))
        return 0

    return _call(args, action)


def run_temp(args: argparse.Namespace) -> int:
    from cardstation.protos.cardstation.v1 import window_pb2 as wpb

    def action(ch: grpc.Channel, md: list) -> int:
        stub = _stub(ch)
        timeout = max(args.timeout, 120)
        if args.action == "issue":
            print("the holder sets the PIN on the PIN pad (twice); nothing is written before "
                  "that ...", flush=True)
            _print(stub.IssueTemporaryCard(wpb.IssueTemporaryCardRequest(
                holder_id_number=args.holder_id, holder_name=args.holder_name,
                agent_id_number=args.agent_id, agent_name=args.agent_name),
                metadata=md, timeout=timeout))
        elif args.action == "rewrite":
            print("the holder sets the PIN on the PIN pad ...", flush=True)
            stub.RewriteTemporaryCard(wpb.RewriteTemporaryCardRequest(), metadata=md,
                                      timeout=timeout)
            print(json.dumps({"temp": "rewrite", "result": "ok"}))
        else:
            _print(stub.RecallTemporaryCard(wpb.RecallTemporaryCardRequest(), metadata=md,
                                            timeout=timeout))
        return 0

    return _call(args, action)
