"""`cardstation sim pinpad`: a simulated PIN pad on a pty, typed into from stdin.

The CLI calls :func:`add_arguments` and :func:`run` (``python -m
cardstation.simulators.pinpad.server`` does the same stand-alone). The first stdout line is
the pty path (the driver opens it as its serial port); then one line per pad event (``prompt
ENTER_PIN: 6..6 digits, 30 s``, ``digits entered: 3``, ``PIN block sent``, ...), never a digit.

Each stdin line is keystrokes: digit strings and the keys ``enter``, ``cancel``, ``clear``
(e.g. ``123456 enter``). Keys typed while a prompt is shown go to it at once; keys typed while
the pad is idle wait for the next prompt. ``inject FAULT`` arms a fault (corrupt_frame,
no_reply, wrong_check_value, keypad_fault); ``quit`` stops. At the end of stdin the pad keeps
running until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any, TextIO

from cardstation.simulators import options
from cardstation.simulators.pinpad.simulator import PinPadSimulator

# The options live where `cardstation --help` reads them without loading the simulator.
add_arguments = options.pinpad_arguments


def _read_stdin(
    sim: PinPadSimulator, stdin: TextIO, stop: threading.Event, out: TextIO, err: TextIO
) -> None:
    for raw in stdin:
        line = raw.strip()
        if not line:
            continue
        words = line.split()
        try:
            if words[0].lower() in ("quit", "exit"):
                stop.set()
                return
            if words[0].lower() == "inject" and len(words) == 2:
                sim.inject(words[1])
                print(f"fault armed: {words[1]}", file=out, flush=True)
            else:
                sim.enter_keys(words)
        except ValueError as exc:
            print(f"error: {exc}", file=err, flush=True)


def run(args: argparse.Namespace) -> int:
    """Run the simulated pad until `quit`, SIGTERM or SIGINT; returns the exit status."""
    try:
        kek = bytes.fromhex(args.kek)
        if len(kek) != 16:
            raise ValueError
    except ValueError:
        print("error: --kek must be 32 hex digits", file=sys.stderr)
        return 2
    out = sys.stdout

    def event(text: str) -> None:
        print(text, file=out, flush=True)

    sim = PinPadSimulator(
        kek, model=args.model, serial=args.serial_number, firmware=args.firmware, events=event
    )
    stop = threading.Event()
    path = sim.start()
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():  # before the path is told
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    print(path, file=out, flush=True)
    reader = threading.Thread(
        target=_read_stdin, args=(sim, sys.stdin, stop, out, sys.stderr), daemon=True
    )
    reader.start()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        sim.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point."""
    parser = argparse.ArgumentParser(prog="cardstation sim pinpad", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
