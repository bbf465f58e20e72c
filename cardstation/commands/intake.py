"""Intake and card-life commands, clients of the station's IntakeService:

  cardstation intake submit APPLICATION.json [--photo F] [--request-id R]   新增申请
  cardstation intake fee ID | mark ID | status ID                           交费登记, 即制卡标注
  cardstation intake hand-over ID             领卡启用 of the card on the desk reader
  cardstation intake loss ID (--temporary | --formal) | lift ID             挂失, 解挂
  cardstation intake cancel ID --reason R | replace ID (--lost | --damaged) [--bank B]

APPLICATION.json holds the NewApplication fields (README, "The gRPC API"); --photo is a photo
file (a `cardstation photo normalize` output) and replaces its photo_jpeg. Every change prints
the card's state as JSON and, with --receipt FILE, writes its receipt PDF there (mode 0600).
A failure prints `{"code", "reason", "message"}` on stderr and exits 1.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # grpc is imported by the commands that call, not by `--help`
    import grpc

from .client import _call, _connection_args


def register(subparsers: argparse._SubParsersAction) -> None:
    intake = subparsers.add_parser("intake", help="new applications and the card's life "
                                   "(挂失, 解挂, 注销, 补换卡) via the server")
    actions = intake.add_subparsers(dest="action", metavar="ACTION", required=True)
    submit = actions.add_parser("submit", help="新增申请 from a JSON file of its fields")
    submit.add_argument("application", type=Path, metavar="APPLICATION.json")
    submit.add_argument("--photo", type=Path, help="the photo (JPEG), instead of photo_jpeg")
    submit.add_argument("--request-id", default="", help="idempotency key")
    subs = [submit]
    for name, helptext in (("fee", "交费登记"), ("mark", "即制卡标注"),
                           ("status", "the card's state at the CMS"),
                           ("hand-over", "领卡启用 of the card on the desk reader"),
                           ("lift", "解挂")):
        sub = actions.add_parser(name, help=helptext)
        sub.add_argument("id_number", metavar="ID_NUMBER")
        subs.append(sub)
    loss = actions.add_parser("loss", help="临时挂失 or 正式挂失")
    loss.add_argument("id_number", metavar="ID_NUMBER")
    kind = loss.add_mutually_exclusive_group(required=True)
    kind.add_argument("--temporary", action="store_true")
    kind.add_argument("--formal", action="store_true")
    cancel = actions.add_parser("cancel", help="注销")
    cancel.add_argument("id_number", metavar="ID_NUMBER")
    cancel.add_argument("--reason", required=True)
    replace = actions.add_parser("replace", help="补换卡 (after 正式挂失)")
    replace.add_argument("id_number", metavar="ID_NUMBER")
    why = replace.add_mutually_exclusive_group(required=True)
    why.add_argument("--lost", action="store_true", help="补卡")
    why.add_argument("--damaged", action="store_true", help="换卡")
    replace.add_argument("--bank", default="", help="变更服务银行 (default: keep it)")
    for sub in (*subs, loss, cancel, replace):
        if sub.prog.split()[-1] != "status":
            sub.add_argument("--receipt", type=Path, help="write the receipt PDF here")
        _connection_args(sub)
        sub.set_defaults(func=run)


def _new_application(args: argparse.Namespace) -> Any:
    from cardstation.protos.cardstation.v1 import intake_pb2 as pb

    fields = json.loads(args.application.read_text(encoding="utf-8"))
    if args.photo is not None:
        fields["photo_jpeg"] = base64.b64encode(args.photo.read_bytes()).decode("ascii")
    from google.protobuf.json_format import ParseDict

    return ParseDict(fields, pb.NewApplication())


def _request(args: argparse.Namespace) -> tuple[str, Any]:
    from cardstation.protos.cardstation.v1 import intake_pb2 as pb

    holder = args.id_number if args.action != "submit" else ""
    match args.action:
        case "submit":
            return "SubmitApplication", pb.SubmitApplicationRequest(
                application=_new_application(args), client_request_id=args.request_id)
        case "fee":
            return "RegisterFee", pb.RegisterFeeRequest(id_number=holder)
        case "mark":
            return "MarkInstantIssuance", pb.MarkInstantIssuanceRequest(id_number=holder)
        case "status":
            return "GetCardLife", pb.GetCardLifeRequest(id_number=holder)
        case "hand-over":
            return "HandOverCard", pb.HandOverCardRequest(id_number=holder)
        case "lift":
            return "LiftLoss", pb.LiftLossRequest(id_number=holder)
        case "loss":
            kind = pb.LOSS_KIND_FORMAL if args.formal else pb.LOSS_KIND_TEMPORARY
            return "ReportLoss", pb.ReportLossRequest(id_number=holder, loss_kind=kind)
        case "cancel":
            return "CancelCard", pb.CancelCardRequest(id_number=holder, reason=args.reason)
    kind = pb.REPLACEMENT_KIND_DAMAGED if args.damaged else pb.REPLACEMENT_KIND_LOST
    return "ApplyReplacement", pb.ApplyReplacementRequest(
        id_number=holder, replacement_kind=kind, bank_name=args.bank)


def _write_receipt(path: Path, pdf: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pdf)


def run(args: argparse.Namespace) -> int:
    try:
        method, request = _request(args)
    except (OSError, ValueError) as exc:  # the file, its JSON or a field of it
        print(json.dumps({"code": "INVALID_ARGUMENT", "reason": "APPLICATION_FILE",
                          "message": f"cannot use {args.application}: {exc} — give a JSON "
                          "object of the NewApplication fields"}, ensure_ascii=False))
        return 2

    def action(ch: grpc.Channel, md: list) -> int:
        from google.protobuf.json_format import MessageToDict

        from cardstation.protos.cardstation.v1 import intake_pb2_grpc

        stub = intake_pb2_grpc.IntakeServiceStub(ch)
        answer = getattr(stub, method)(request, metadata=md, timeout=args.timeout)
        change = getattr(answer, "change", None)
        out = MessageToDict(answer, preserving_proto_field_name=True)
        if change is not None:
            out.get("change", {}).pop("receipt_pdf", None)
            receipt = getattr(args, "receipt", None)
            if receipt is not None:
                _write_receipt(receipt, change.receipt_pdf)
                out["receipt"] = str(receipt)
        print(json.dumps(out, ensure_ascii=False))
        return 0

    return _call(args, action)
