"""`cardstation sim idreader [--card ID_NUMBER]`: the simulated GA 467 reader on a pty.

The first stdout line is the serial device path (`/dev/pts/N`) for `cardstation read-id --port`;
the simulator serves until SIGINT or SIGTERM. The card is generated (never a real person): by
default the sample card with the GB 11643 example number; `--card` generates one for another
valid ID number (birth date and sex follow from the number). The CLI calls `add_arguments` and
`run`; `python -m cardstation.simulators.idreader` runs it standalone.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cardstation.simulators import options
from cardstation.simulators.foreground import catch_stop_signals, wait_for_stop_signal
from cardstation.simulators.idreader.model import make_card, make_permit
from cardstation.simulators.idreader.pty import IdReaderSimulator

# The options live where `cardstation --help` reads them without loading the simulator.
add_arguments = options.idreader_arguments


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; print the device path first. Exit 2 on a bad --card."""
    try:
        permit = getattr(args, "permit", None)
        card = None if getattr(args, "empty", False) else (
            make_permit(permit, args.card) if permit
            else make_card(args.card) if args.card else make_card()
        )
    except ValueError as exc:
        print(f"sim idreader: {exc}", file=sys.stderr)
        return 2
    sim = IdReaderSimulator(card)
    path = sim.start()
    stop = catch_stop_signals()  # before the path: a caller may signal as soon as it reads it
    print(path, flush=True)
    what = "no card" if card is None else f"card {card.masked_id_number}"
    print(f"GA 467 ID-card reader simulator on {path} ({what})", flush=True)
    try:
        wait_for_stop_signal(stop)
    finally:
        sim.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cardstation sim idreader", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
