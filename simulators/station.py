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
                 cms_seed: int = 1, printed_faces: bool = True) -> None:
        """`printed_faces`: the printer simulator writes a PNG of every printed side into
        `folder/printed` (for tests and the demo; benchmarks turn it off, a real printer
        spends no station CPU on it)."""
        folder = Path(folder)
        self.data_dir = folder / "station"
        self.cms = CmsSimulator(seed=cms_seed, extra_applicants=extra_applicants)
        self.model = PrinterModel(speed=speed,
                                  output_dir=folder / "printed" if printed_faces else None)
        self.encoder = VpcdLink(port=ENCODER_PORT)
        self.coupler = EncoderCoupler(self.model, self.encoder)
        self.psam = VpcdLink(Psam(alg=Alg.SM4), port=PSAM_PORT)
        self.server = PrinterSimServer(self.model)
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
        self.encoder.start()
        self.psam.start()
        self.server.start()
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
        self.server.close()
        self.encoder.stop()
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
                   profile: str = "blank3", **overrides: Any) -> list[CountingChip]:
        """Put blank pre-made cards (each with its own chip) into the printer's input."""
        loaded = []
        for _ in range(count):
            serial = 0x30001000 + len(self.chips)
            chip = CountingChip(make_card(profile, serial=serial, **overrides))
            self.chips.append(chip)
            self.model.load_card(orientation, chip=chip)
            loaded.append(chip)
        return loaded

    def config_sections(self) -> dict[str, dict[str, Any]]:
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
        }

    def toml(self) -> str:
        """config_sections() as the text of a cardstation.toml, for a station in another
        process."""
        lines = []
        for section, values in self.config_sections().items():
            lines.append(f"[{section}]")
            lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
        return "\n".join(lines) + "\n"
