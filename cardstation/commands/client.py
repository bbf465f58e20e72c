"""gRPC clients: `cardstation issue|issuances|returns|station`.

Connection options (all commands): --server HOST:PORT (env CARDSTATION_SERVER, default
127.0.0.1:50051), --token (env CARDSTATION_TOKEN), --ca/--cert/--key for TLS and mTLS.
Progress: each state is printed as it is reached (a step bar on a terminal); the last line of a
successful card is DONE. Errors print the status code, the ErrorInfo reason and the message.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # grpc is imported by the commands that call, not by `--help`
    import grpc

STEPS = ("QUEUED", "FETCHED", "PREVIEWED", "FED", "CHIP_WRITTEN", "VERIFIED", "RETURN_QUEUED",
         "PRINTED", "EJECTED", "DONE")


def _connection_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", default=os.environ.get("CARDSTATION_SERVER",
                                                           "127.0.0.1:50051"))
    parser.add_argument("--token", default=os.environ.get("CARDSTATION_TOKEN"),
                        help="bearer token (or env CARDSTATION_TOKEN)")
    parser.add_argument("--ca", help="CA certificate (PEM) to trust the server: enables TLS")
    parser.add_argument("--cert", help="client certificate (PEM) for mTLS")
    parser.add_argument("--key", help="client key (PEM) for mTLS")
    parser.add_argument("--timeout", type=float, default=30.0, help="deadline of unary calls")


def register(subparsers: argparse._SubParsersAction) -> None:
    issue = subparsers.add_parser("issue", help="make a card through the station's server")
    issue.add_argument("id_number", metavar="ID_NUMBER")
    issue.add_argument("--watch", action="store_true", help="follow the job until it ends")
    issue.add_argument("--request-id",
                       help="idempotency key (default: none, so asking again for the same "
                            "person follows the job already making their card)")
    issue.add_argument("--remake-of", help="re-make: the earlier job's id (a second card)")
    issue.add_argument("--remake-reason", default="", help="why a second card is made")
    _connection_args(issue)
    issue.set_defaults(func=run_issue)

    listing = subparsers.add_parser("issuances", help="list card jobs")
    listing.add_argument("--state", help="only jobs in this state (e.g. FAILED)")
    listing.add_argument("--page-size", type=int, default=50)
    listing.add_argument("--all", action="store_true", help="follow every page")
    _connection_args(listing)
    listing.set_defaults(func=run_issuances)

    returns = subparsers.add_parser("returns", help="data returns not yet at the CMS")
    returns.add_argument("--retry", action="store_true", help="send them again now (admin)")
    _connection_args(returns)
    returns.set_defaults(func=run_returns)

    station = subparsers.add_parser("station", help="devices, supplies and queue")
    _connection_args(station)
    station.set_defaults(func=run_station)


def channel(args: argparse.Namespace) -> grpc.Channel:
    import grpc

    if args.ca:
        def read(path: str | None) -> bytes | None:
            return open(path, "rb").read() if path else None

        creds = grpc.ssl_channel_credentials(read(args.ca), read(args.key), read(args.cert))
        return grpc.secure_channel(args.server, creds)
    return grpc.insecure_channel(args.server)


def _metadata(args: argparse.Namespace) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {args.token}")] if args.token else []


def _call(args: argparse.Namespace, action: Callable[[grpc.Channel, list], Any]) -> int:
    import grpc

    try:
        with channel(args) as ch:
            return int(action(ch, _metadata(args)) or 0)
    except grpc.RpcError as exc:
        from cardstation.server.errors import error_info

        info = error_info(exc)
        reply = {"code": exc.code().name, "reason": info.reason if info else "",
                 "message": exc.details()}
        if info is not None and info.metadata.get("issuance_id"):
            reply["issuance_id"] = info.metadata["issuance_id"]
        if exc.code() is grpc.StatusCode.UNAVAILABLE and not info:
            reply["message"] = (f"the station's server at {args.server} does not answer — "
                                "start it (cardstation serve) or check --server")
        print(json.dumps(reply, ensure_ascii=False), file=sys.stderr)
        return 1


class Progress:
    """A step bar on a terminal, one line per state otherwise."""

    def __init__(self, stream: Any = sys.stdout) -> None:
        self.stream = stream
        self.tty = stream.isatty()

    def show(self, state: str, message: str) -> None:
        if not self.tty:
            print(f"{state:<14} {message}", file=self.stream, flush=True)
            return
        done = STEPS.index(state) + 1 if state in STEPS else 0
        bar = "#" * done + "." * (len(STEPS) - done)
        print(f"\r[{bar}] {state:<14} {message[:60]:<60}", end="", file=self.stream, flush=True)
        if state in ("DONE", "REJECTED", "FAILED"):
            print(file=self.stream)


def run_issue(args: argparse.Namespace) -> int:
    from cardstation.protos.cardstation.v1 import issuance_pb2 as ipb
    from cardstation.protos.cardstation.v1 import issuance_pb2_grpc

    def action(ch: grpc.Channel, md: list) -> int:
        stub = issuance_pb2_grpc.IssuanceServiceStub(ch)
        request = ipb.CreateIssuanceRequest(client_request_id=args.request_id or "",
                                            id_number=args.id_number,
                                            remake_of=args.remake_of or "",
                                            remake_reason=args.remake_reason)
        response = stub.CreateIssuance(request, metadata=md, timeout=args.timeout)
        created = response.issuance
        state = ipb.IssuanceState.Name(created.state).removeprefix("ISSUANCE_STATE_")
        if not args.watch:
            print(json.dumps({"id": created.id, "state": state, "created": response.created,
                              "hand_over_allowed": created.hand_over_allowed}))
            return 0
        progress = Progress()
        progress.show(state, f"job {created.id[:8]} accepted" if response.created else
                      f"this person's card is already being made: following job "
                      f"{created.id[:8]}")
        last = state
        for reply in stub.WatchIssuance(ipb.WatchIssuanceRequest(id=created.id),
                                        metadata=md):
            event = reply.event
            last = ipb.IssuanceState.Name(event.state).removeprefix("ISSUANCE_STATE_")
            progress.show(last, event.message)
            if event.final:
                break
        if last == "DONE":
            progress.show("DONE", "hand the card over: the CMS has its data")
        return 0 if last == "DONE" else 1

    return _call(args, action)


def run_issuances(args: argparse.Namespace) -> int:
    from google.protobuf.json_format import MessageToDict

    from cardstation.protos.cardstation.v1 import issuance_pb2 as ipb
    from cardstation.protos.cardstation.v1 import issuance_pb2_grpc

    def action(ch: grpc.Channel, md: list) -> int:
        stub = issuance_pb2_grpc.IssuanceServiceStub(ch)
        state = 0
        if args.state:
            name = f"ISSUANCE_STATE_{args.state.upper()}"
            if name not in ipb.IssuanceState.keys():
                known = ", ".join(k.removeprefix("ISSUANCE_STATE_") for k in
                                  ipb.IssuanceState.keys()[1:])
                print(f"issuances: --state {args.state!r} is not a state; use one of: {known}",
                      file=sys.stderr)
                return 2
            state = ipb.IssuanceState.Value(name)
        token = ""
        while True:
            page = stub.ListIssuances(ipb.ListIssuancesRequest(
                page_size=args.page_size, page_token=token, state=state),
                metadata=md, timeout=args.timeout)
            for issuance in page.issuances:
                row = MessageToDict(issuance, preserving_proto_field_name=True)
                print(json.dumps(row, ensure_ascii=False))
            token = page.next_page_token
            if not token or not args.all:
                return 0

    return _call(args, action)


def run_returns(args: argparse.Namespace) -> int:
    from google.protobuf.json_format import MessageToDict

    from cardstation.protos.cardstation.v1 import returns_pb2 as rpb
    from cardstation.protos.cardstation.v1 import returns_pb2_grpc

    def action(ch: grpc.Channel, md: list) -> int:
        stub = returns_pb2_grpc.ReturnServiceStub(ch)
        if args.retry:
            scheduled = stub.RetryReturns(rpb.RetryReturnsRequest(), metadata=md,
                                          timeout=args.timeout).scheduled
            print(json.dumps({"scheduled": scheduled}))
        listing = stub.ListReturns(rpb.ListReturnsRequest(), metadata=md, timeout=args.timeout)
        for entry in listing.returns:
            print(json.dumps(MessageToDict(entry, preserving_proto_field_name=True),
                             ensure_ascii=False))
        return 0

    return _call(args, action)


def run_station(args: argparse.Namespace) -> int:
    from google.protobuf.json_format import MessageToDict

    from cardstation.protos.cardstation.v1 import station_pb2 as spb
    from cardstation.protos.cardstation.v1 import station_pb2_grpc

    def action(ch: grpc.Channel, md: list) -> int:
        stub = station_pb2_grpc.StationServiceStub(ch)
        station = stub.GetStation(spb.GetStationRequest(), metadata=md,
                                  timeout=args.timeout).station
        print(json.dumps(MessageToDict(station, preserving_proto_field_name=True),
                         ensure_ascii=False, indent=2))
        return 0

    return _call(args, action)
