"""`cardstation sim ...`: run a device simulator in the foreground until interrupted.

  sim card  --vpcd HOST:PORT [--profile NAME] [--state FILE]   a social security card in a vpcd slot
  sim psam  --vpcd HOST:PORT                                  the PSAM in a vpcd slot
  sim printer --listen HOST:PORT --speed F                    the HiTi CS-220e over TCP
  sim cms --listen HOST:PORT --seed N                         the CMS over HTTP/JSON
  sim idreader [--card ID_NUMBER]                             the GA 467 reader on a pty
  sim pinpad                                                  the PIN pad on a pty
  sim hsm --port N --pki DIR                                  the encryption machine, mTLS

Each prints one line saying where it serves, then runs until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from pathlib import Path

from cardstation.simulators import options


def register(subparsers: argparse._SubParsersAction) -> None:
    sim = subparsers.add_parser("sim", help="run a device simulator in the foreground")
    kinds = sim.add_subparsers(dest="device", metavar="DEVICE", required=True)

    card = kinds.add_parser("card", help="a social security card linked to a vpcd reader slot")
    card.add_argument("--vpcd", default="127.0.0.1:35963", help="vpcd slot HOST:PORT")
    card.add_argument("--profile", default="blank3", help="blank3 (default), blank2, "
                      "temporary, personalised")
    card.add_argument("--state", type=Path, help="JSON file holding the chip: loaded if it "
                      "exists, saved on exit, so a card taken out and put back keeps its data")
    card.set_defaults(func=run_card)

    psam = kinds.add_parser("psam", help="the PSAM (key module) linked to a vpcd reader slot")
    psam.add_argument("--vpcd", default="127.0.0.1:35964", help="vpcd slot HOST:PORT")
    psam.set_defaults(func=run_psam)

    idreader = kinds.add_parser("idreader", help="the GA 467 ID-card reader on a pty")
    options.idreader_arguments(idreader)
    idreader.set_defaults(func=_server_run("idreader"))

    pinpad = kinds.add_parser("pinpad", help="the PIN pad on a pty (type keystrokes on stdin)")
    options.pinpad_arguments(pinpad)
    pinpad.set_defaults(func=_server_run("pinpad"))

    cms = kinds.add_parser("cms", help="the provincial card-management system over HTTP")
    options.cms_arguments(cms)
    cms.set_defaults(func=_server_run("cms"))

    hsm = kinds.add_parser("hsm", help="the remote encryption machine on loopback (mutual TLS)")
    hsm.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free)")
    hsm.add_argument("--pki", type=Path, default=Path("var/hsm-sim"),
                     help="folder for its throwaway CA and certificates (TEST ONLY)")
    hsm.set_defaults(func=run_hsm)

    printer = kinds.add_parser("printer", help="the HiTi CS-220e printer over TCP")
    options.printer_arguments(printer)
    printer.set_defaults(func=_server_run("printer"))


def _server_run(device: str) -> Callable[[argparse.Namespace], int]:
    """`run` of the device's simulator server, imported only when that device is run."""
    def run(args: argparse.Namespace) -> int:
        server = importlib.import_module(f"cardstation.simulators.{device}.server")
        return int(server.run(args))

    return run


def _serve_until_signal(link: object, what: str, on_exit: object = None) -> int:
    from cardstation.simulators.foreground import catch_stop_signals, wait_for_stop_signal

    stop = catch_stop_signals()
    print(what, flush=True)
    try:
        wait_for_stop_signal(stop)
    finally:
        link.stop()  # type: ignore[attr-defined]
        if callable(on_exit):
            on_exit()
    return 0


def run_card(args: argparse.Namespace) -> int:
    from cardstation.simulators.card import SSCard, make_card
    from cardstation.simulators.vpcd.link import VpcdLink, parse_address

    try:
        host, port = parse_address(args.vpcd)
        if args.state and args.state.exists():
            card = SSCard.load(args.state)
        else:
            card = make_card(args.profile)
    except (ValueError, OSError) as exc:
        print(f"sim card: {exc}", file=sys.stderr)
        return 2
    link = VpcdLink(card, host, port).start()
    save = (lambda: card.save(args.state)) if args.state else None
    return _serve_until_signal(link, f"card ({args.profile}) in vpcd {host}:{port}", save)


def run_psam(args: argparse.Namespace) -> int:
    from cardstation.simulators.card import Psam
    from cardstation.simulators.vpcd.link import VpcdLink, parse_address

    try:
        host, port = parse_address(args.vpcd)
    except ValueError as exc:
        print(f"sim psam: {exc}", file=sys.stderr)
        return 2
    link = VpcdLink(Psam(), host, port).start()
    return _serve_until_signal(link, f"psam in vpcd {host}:{port}")


def run_hsm(args: argparse.Namespace) -> int:
    """Print the `[keys]` section that uses the simulator, then serve until a signal."""
    from cardstation.simulators.hsm import HsmSimulator

    try:
        sim = HsmSimulator(args.pki).start(port=args.port)
    except OSError as exc:
        print(f"sim hsm: {exc}", file=sys.stderr)
        return 2
    keys = "\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in sim.keys_config().items())
    return _serve_until_signal(sim, f"encryption machine on {sim.address}\n[keys]\n{keys}")
