"""A whole simulated station in one process: CMS, printer (TCP), encoder and PSAM vpcd slots.

Used by `cardstation demo`, the benchmarks and the end-to-end tests. The station software
reaches the simulators only through their real interfaces: HTTP for the CMS, `socket://` for
the printer, pcscd + vpcd for the chips and the PSAM.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from cardstation.personalization.keys.scheme import Alg
from cardstation.simulators.card import Psam, SSCard, make_card
from cardstation.simulators.cms.server import CmsSimulator
from cardstation.simulators.coupling import EncoderCoupler
from cardstation.simulators.hsm import HsmSimulator
from cardstation.simulators.idreader import IdReaderSimulator
from cardstation.simulators.pinpad import PinPadSimulator
from cardstation.simulators.printer.model import PrinterModel
from cardstation.simulators.printer.server import PrinterSimServer
from cardstation.simulators.vpcd.link import VpcdLink

ENCODER_PORT = 35963
PSAM_PORT = 35964
DESK_PORT = 35965
#: the encoders of the second and third simulated printers: the slots of a vpcd entry of
#: their own (simulators/vpcd/lanes.conf), "Virtual PCD Lanes 00 00" and "... 00 01"
LANE_ENCODER_PORTS = (35967, 35968)
#: the PC/SC reader name of each simulated printer's encoder, by printer
ENCODER_READERS = ("Virtual PCD 00 00", "Virtual PCD Lanes 00 00", "Virtual PCD Lanes 00 01")
MAX_PRINTERS = len(ENCODER_READERS)


class SimulatedPrinter:
    """One simulated printer with its encoder's vpcd slot, coupled (a lane's devices)."""

    def __init__(self, name: str, port: int, reader: str, speed: float,
                 output_dir: Path | None) -> None:
        self.name = name
        self.reader = reader
        self.model = PrinterModel(speed=speed, output_dir=output_dir,
                                  serial=f"CS220E-SIM-{int(name):04d}")
        self.encoder = VpcdLink(port=port)
        self.coupler = EncoderCoupler(self.model, self.encoder)
        self.server = PrinterSimServer(self.model)

    def start(self) -> None:
        self.encoder.start()
        self.server.start()

    def stop(self) -> None:
        self.server.close()
        self.encoder.stop()


class CountingChip:
    """A card simulator that counts successful UPDATE RECORDs per tag (writes per item)."""

    def __init__(self, card: SSCard) -> None:
        self.card = card
        self.writes: Counter[int] = Counter()
        self.binary_writes = 0  # successful UPDATE BINARYs (certificates, secrets)

    @property
    def atr(self) -> bytes:
        return self.card.atr

    def power_on(self) -> bytes:
        return self.card.power_on()

    def power_off(self) -> None:
        self.card.power_off()

    def reset(self) -> bytes:
        return self.card.reset()

    def process_apdu(self, apdu: bytes) -> bytes:
        response = self.card.process_apdu(apdu)
        if apdu[:2] == b"\x00\xdc" and response[-2:] == b"\x90\x00":
            self.writes[apdu[2]] += 1
        if apdu[:2] == b"\x00\xd6" and response[-2:] == b"\x90\x00":
            self.binary_writes += 1
        return response


class SimulatedStation:
    """Every simulator of one station. `config()` points a station's configuration at them."""

    def __init__(self, folder: Path, speed: float = 0.0, extra_applicants: int = 0,
                 cms_seed: int = 1, printed_faces: bool = True, printers: int = 1) -> None:
        """`printed_faces`: the printer simulator writes a PNG of every printed side into
        `folder/printed` (for tests and the demo; benchmarks turn it off, a real printer
        spends no station CPU on it). `printers`: how many printers (lanes), 1 to 3; each
        has its own encoder slot (ENCODER_READERS) and is configured as `[[printers]]`
        named "1", "2", ... when there are several."""
        folder = Path(folder)
        if not 1 <= printers <= MAX_PRINTERS:
            raise ValueError(f"a simulated station has 1 to {MAX_PRINTERS} printers, not "
                             f"{printers} (one vpcd slot each: simulators/vpcd/lanes.conf)")
        self.data_dir = folder / "station"
        self.cms = CmsSimulator(seed=cms_seed, extra_applicants=extra_applicants)
        ports = (ENCODER_PORT, *LANE_ENCODER_PORTS)
        self.printers = [
            SimulatedPrinter(str(index + 1), ports[index], ENCODER_READERS[index], speed,
                             (folder / "printed" / (str(index + 1) if index else ""))
                             if printed_faces else None)
            for index in range(printers)]
        first = self.printers[0]
        # the first printer's parts, by the names a one-printer station has always used
        self.model, self.encoder, self.coupler, self.server = \
            first.model, first.encoder, first.coupler, first.server
        self.psam = VpcdLink(Psam(alg=Alg.SM4), port=PSAM_PORT)
        # the window: desk reader slot (cards are put in with desk.insert), ID reader, PIN pad
        self.desk = VpcdLink(port=DESK_PORT)
        self.idreader = IdReaderSimulator()
        self.pinpad = PinPadSimulator()
        self.chips: list[CountingChip] = []
        self.speed = speed
        self.folder = folder
        self.hsm: HsmSimulator | None = None  # the encryption machine, when start_hsm() ran

    def start(self) -> SimulatedStation:
        self.cms.start()
        for printer in self.printers:
            printer.start()
        self.psam.start()
        self.desk.start()
        self.idreader_path = self.idreader.start()
        self.pinpad_path = self.pinpad.start()
        return self

    def start_hsm(self) -> dict[str, Any]:
        """Start the encryption-machine simulator (once); the `[keys]` values that use it."""
        if self.hsm is None:
            self.hsm = HsmSimulator(self.folder / "hsm").start()
        return self.hsm.keys_config()

    def stop(self) -> None:
        if self.hsm is not None:
            self.hsm.stop()
        for printer in self.printers:
            printer.stop()
        self.psam.stop()
        self.desk.stop()
        self.idreader.stop()
        self.pinpad.stop()
        self.cms.stop()

    def __enter__(self) -> SimulatedStation:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def printer_url(self) -> str:
        return self.server.url

    def load_blank(self, count: int = 1, orientation: str = "right_way",
                   profile: str = "blank3", printer: int = 0,
                   **overrides: Any) -> list[CountingChip]:
        """Put blank pre-made cards (each with its own chip) into a printer's input (the
        first's unless `printer`, an index into `printers`, says another)."""
        model = self.printers[printer].model
        loaded = []
        for _ in range(count):
            serial = 0x30001000 + len(self.chips)
            chip = CountingChip(make_card(profile, serial=serial, **overrides))
            self.chips.append(chip)
            model.load_card(orientation, chip=chip)
            loaded.append(chip)
        return loaded

    def config_sections(self) -> dict[str, Any]:
        """The configuration values that point a station at these simulators (PSAM key
        service, fast polling), by section; the composition root makes them a Config
        (cardstation/simulated.py)."""
        return {
            "station": {"id": "410700-SIM", "data_dir": str(self.data_dir)},
            "cms": {"url": self.cms.base_url, "read_timeout": 2.0, "connect_timeout": 1.0},
            # the driver's pause after each panel upload is device time: scaled like the rest
            "printer": {"device": self.server.url, "poll_interval": 0.01,
                        "panel_pause": 0.2 * self.speed},
            "returns": {"base_delay": 0.05, "max_delay": 0.2},
            "keys": {"test_keys": True},  # the PIN pad's key-encryption key is the test one
            "window": {"idreader": self.idreader_path, "pinpad": self.pinpad_path},
            **({"printers": [{"name": p.name, "device": p.server.url, "encoder": p.reader,
                              "poll_interval": 0.01, "panel_pause": 0.2 * self.speed}
                             for p in self.printers]} if len(self.printers) > 1 else {}),
        }

    def toml(self) -> str:
        """config_sections() as the text of a cardstation.toml, for a station in another
        process."""
        lines = []
        for section, values in self.config_sections().items():
            tables = values if isinstance(values, list) else [values]
            for table in tables:
                lines.append(f"[[{section}]]" if isinstance(values, list) else f"[{section}]")
                lines += [f"{key} = {json.dumps(value)}" for key, value in table.items()]
        return "\n".join(lines) + "\n"
