"""The command-line options of the device simulators, apart from the simulators themselves:
`cardstation sim ... --help` and `cardstation --help` build their parsers from here without
importing a simulator (each pulls in its device model, imaging or crypto libraries).
"""

from __future__ import annotations

import argparse

# The published TEST-ONLY PIN pad master key (drivers.pinpad.pinblock.TEST_PINPAD_KEK) in hex;
# written out so the parser does not load the crypto library. A test keeps the two equal.
TEST_PINPAD_KEK_HEX = "0123456789ABCDEFFEDCBA9876543210"


def idreader_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `sim idreader` options to `parser`."""
    parser.add_argument(
        "--card", metavar="ID_NUMBER", default=None,
        help="put a generated card with this ID number on the reader (default: the sample "
             "card, 11010519491231002X)",
    )
    parser.add_argument(
        "--permit", choices=("J", "I", "Y"), default=None,
        help="put a generated permit on the reader instead: J HK/Macao/Taiwan residence "
             "permit, I foreigner permanent residence card (2017), Y (2023)",
    )
    parser.add_argument("--empty", action="store_true", help="start with no card on the reader")


def pinpad_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `cardstation sim pinpad`."""
    parser.add_argument(
        "--kek",
        default=TEST_PINPAD_KEK_HEX,
        help="the pad's master key (32 hex digits); default: the published TEST-ONLY KEK",
    )
    parser.add_argument("--model", default="CSPP-SIM", help="model reported by HELLO")
    parser.add_argument("--serial-number", default="SIM00000001", help="serial number for HELLO")
    parser.add_argument("--firmware", default="1.0.0", help="firmware version for HELLO")


def cms_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `cardstation sim cms`."""
    parser.add_argument(
        "--listen",
        default="127.0.0.1:8780",
        help="address host:port to serve on (port 0: any free port)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the generated sample applicants"
    )
    parser.add_argument(
        "--state",
        default=None,
        help="JSON file keeping the ledger across restarts (loaded if present)",
    )
    parser.add_argument(
        "--extra-applicants",
        type=int,
        default=0,
        metavar="N",
        help="N more ready applicants in a new ledger (crash drill)",
    )


def printer_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `cardstation sim printer`."""
    parser.add_argument("--listen", default="127.0.0.1:9100", help="device address host:port")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="time scale: 1 real time, 0.1 ten times faster, 0 instant")
    parser.add_argument("--control", default=None,
                        help="control channel host:port (line-based JSON)")
    parser.add_argument("--output", default=None, help="folder for the printed-side PNGs")
    parser.add_argument("--cards", type=int, default=10, help="blank cards in the input hopper")
    parser.add_argument("--orientation", default="right_way",
                        choices=["right_way", "chip_far_end", "face_down"],
                        help="how the loaded cards are oriented")  # fmt: skip
