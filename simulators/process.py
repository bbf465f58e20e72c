"""A simulated station in a child process, driven over a pipe.

Real devices do their own work: the printer parses 4 MB of panel data, the PSAM computes SM4,
the CMS encodes JSON. In one process with the station those simulators share its interpreter
lock, and a figure measured that way charges their work to the station. Benchmarks therefore
run the simulators here, beside the station, as `SimulatedStationProcess(folder).start()`.

Only what a benchmark needs crosses the pipe: loading blank cards, the station configuration,
the CMS's sample ID numbers and fault injection. Errors in the child come back as
`SimulatorProcessError` with the child's message.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any


class SimulatorProcessError(RuntimeError):
    pass


def _serve(conn: Connection, folder: str, options: dict[str, Any]) -> None:
    from cardstation.simulators.station import SimulatedStation

    try:
        sim = SimulatedStation(Path(folder), **options)
        sim.start()
    except Exception as exc:  # tell the parent why, then end (stopping what did start)
        conn.send(("error", f"simulators did not start: {type(exc).__name__}: {exc}"))
        if "sim" in locals():
            sim.stop()
        return
    operations = {
        "load_blank": lambda count, printer=0: len(sim.load_blank(count, printer=printer)),
        "config_sections": sim.config_sections,
        "samples": lambda key: list(sim.cms.samples[key]),
        "cms_inject": sim.cms.inject,
        "cms_clear": sim.cms.clear_faults,
        "toml": sim.toml,
        "restock": lambda blank, ribbon: _restock(sim, blank, ribbon),
        "audit": lambda: _audit(sim),
    }
    conn.send(("ok", None))
    try:
        while True:
            try:
                name, args, kwargs = conn.recv()
            except (EOFError, OSError):  # the parent went away
                break
            if name == "stop":
                break
            try:
                conn.send(("ok", operations[name](*args, **kwargs)))
            except Exception as exc:
                conn.send(("error", f"{name}: {type(exc).__name__}: {exc}"))
    finally:
        sim.stop()
        try:
            conn.send(("ok", None))
        except OSError:
            pass


def _restock(sim: Any, blank: int, ribbon: int) -> dict[str, int]:
    """Supplies for a long drill, at every printer: blank cards up to `blank` in the input,
    the ribbon up to `ribbon` prints, and the reject box emptied (as an operator would)."""
    loaded = rejected = 0
    for index, printer in enumerate(sim.printers):
        model = printer.model
        missing = max(0, blank - len(model.input_cards))
        sim.load_blank(missing, printer=index)
        if model.ribbon is not None:
            model.ribbon.remaining = max(model.ribbon.remaining, ribbon)
        loaded += missing
        rejected += len(model.empty_reject_box())
    return {"loaded": loaded, "rejected_taken": rejected}


def _audit(sim: Any) -> dict[str, Any]:
    """What the simulators saw, for a drill's audit: the CMS ledger, every printer's print
    log (a card is "<printer>:<serial>", serials being each printer's own), every chip's
    writes (by its ATR) and the ATRs of the cards in the output hoppers."""
    print_log: list[dict[str, Any]] = []
    output: list[str] = []
    rejected = 0
    for printer in sim.printers:
        model = printer.model
        for record in model.print_log:
            entry = record.to_dict()
            print_log.append({**entry, "card": f"{printer.name}:{entry['card']}",
                              "printer": printer.name})
        output += [card.chip.atr.hex().upper() for card in model.output_hopper
                   if card.chip is not None]
        rejected += len(model.reject_box)
    return {
        "ledger": sim.cms.ledger(photos=False),
        "print_log": print_log,
        "chips": [{"atr": chip.atr.hex().upper(), "writes": dict(chip.writes),
                   "binary_writes": chip.binary_writes} for chip in sim.chips],
        "output_atrs": output,
        "reject_box": rejected,
    }


class SimulatedStationProcess:
    """The simulators of `SimulatedStation(folder, **options)` in a child process."""

    def __init__(self, folder: Path, **options: Any) -> None:
        self.folder = Path(folder)
        self.options = options
        self._conn: Connection | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> SimulatedStationProcess:
        # A fresh interpreter (`python -m`), not multiprocessing's spawn: that would import
        # the caller's main module again. The pipe is a socket pair handed down by fd.
        ours, theirs = socket.socketpair()
        command = [sys.executable, "-m", "cardstation.simulators.process", str(theirs.fileno()),
                   str(self.folder), json.dumps(self.options)]
        self._process = subprocess.Popen(command, pass_fds=(theirs.fileno(),))
        theirs.close()
        self._conn = Connection(ours.detach())
        try:
            self._reply(timeout)
        except SimulatorProcessError:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 30.0) -> None:
        if self._conn is not None:
            try:
                self._conn.send(("stop", (), {}))
                self._reply(timeout)
            except (OSError, SimulatorProcessError):
                pass
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        if self._process is not None:
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    def __enter__(self) -> SimulatedStationProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what a benchmark asks of the simulators -------------------------------------------
    def load_blank(self, count: int, printer: int = 0) -> int:
        """Blank cards into a printer's input (an index into the simulated printers)."""
        return int(self._call("load_blank", count, printer=printer))

    def config_sections(self) -> dict[str, Any]:
        """What points a station at these simulators (cardstation/simulated.py makes it a
        Config)."""
        return dict(self._call("config_sections"))

    def samples(self, key: str) -> list[str]:
        return list(self._call("samples", key))

    def cms_inject(self, fault: str, **params: Any) -> None:
        self._call("cms_inject", fault, **params)

    def cms_clear(self) -> None:
        self._call("cms_clear")

    def toml(self) -> str:
        """The station's cardstation.toml for these simulators (SimulatedStation.toml)."""
        return str(self._call("toml"))

    def restock(self, blank: int, ribbon: int = 1000) -> dict[str, int]:
        return dict(self._call("restock", blank, ribbon))

    def audit(self) -> dict[str, Any]:
        return dict(self._call("audit"))

    # -- plumbing ---------------------------------------------------------------------------
    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if self._conn is None:
            raise SimulatorProcessError("the simulator process is not running: start() it")
        try:
            self._conn.send((name, args, kwargs))
        except OSError:
            self._abandon()
            raise SimulatorProcessError("the simulator process ended unexpectedly") from None
        return self._reply(60.0)

    def _reply(self, timeout: float) -> Any:
        """The child's answer. No answer in time, or a broken pipe, ends the child: a late
        answer left in the pipe would otherwise be taken as the answer to the next call."""
        assert self._conn is not None
        try:
            if not self._conn.poll(timeout):
                self._abandon()
                raise SimulatorProcessError(f"the simulator process did not answer in "
                                            f"{timeout} s; it was stopped")
            status, value = self._conn.recv()
        except (EOFError, OSError):
            self._abandon()
            raise SimulatorProcessError("the simulator process ended unexpectedly") from None
        if status != "ok":
            raise SimulatorProcessError(str(value))
        return value

    def _abandon(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None


def main(argv: list[str]) -> int:
    """Child side: `python -m cardstation.simulators.process FD FOLDER OPTIONS_JSON`."""
    fd, folder, options = int(argv[1]), argv[2], json.loads(argv[3])
    _serve(Connection(fd), folder, options)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
