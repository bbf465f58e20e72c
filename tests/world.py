"""A whole simulated station for pipeline tests: CMS, printer, encoder and PSAM slots, chips."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cardstation.config import Config
from cardstation.personalization.keys.scheme import Alg
from cardstation.simulators.card import Psam, SSCard, make_card
from cardstation.simulators.cms.server import CmsSimulator
from cardstation.simulators.coupling import EncoderCoupler
from cardstation.simulators.printer.model import PrinterModel
from cardstation.simulators.printer.server import PrinterSimServer
from cardstation.simulators.vpcd.link import VpcdLink

ENCODER_PORT, PSAM_PORT = 35963, 35964


class CountingChip:
    """A card simulator that counts successful UPDATE RECORDs per tag (writes per item)."""

    def __init__(self, card: SSCard) -> None:
        self.card = card
        self.writes: Counter[int] = Counter()

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
        return response


@dataclass
class World:
    data_dir: Path
    cms: CmsSimulator
    model: PrinterModel
    server: PrinterSimServer
    encoder: VpcdLink
    psam: VpcdLink
    chips: list[CountingChip] = field(default_factory=list)

    def load_blank(self, count: int = 1, orientation: str = "right_way",
                   profile: str = "blank3", **overrides: Any) -> list[CountingChip]:
        loaded = []
        for _ in range(count):
            serial = 0x30001000 + len(self.chips)
            chip = CountingChip(make_card(profile, serial=serial, **overrides))
            self.chips.append(chip)
            self.model.load_card(orientation, chip=chip)
            loaded.append(chip)
        return loaded

    def config(self, **sections: dict[str, Any]) -> Config:
        base = Config().with_values(
            station={"id": "410700-TEST", "data_dir": str(self.data_dir)},
            cms={"url": self.cms.base_url, "read_timeout": 2.0, "connect_timeout": 1.0},
            printer={"device": self.server.url, "poll_interval": 0.01},
            returns={"base_delay": 0.05, "max_delay": 0.2},
        )
        return base.with_values(**sections) if sections else base

    def close(self) -> None:
        self.server.close()
        self.encoder.stop()
        self.psam.stop()
        self.cms.stop()


def make_world(tmp: Path, extra_applicants: int = 0, speed: float = 0.0) -> World:
    cms = CmsSimulator(seed=1, extra_applicants=extra_applicants)
    cms.start()
    model = PrinterModel(speed=speed, output_dir=tmp / "printed")
    encoder = VpcdLink(port=ENCODER_PORT)
    EncoderCoupler(model, encoder)
    encoder.start()
    psam = VpcdLink(Psam(alg=Alg.SM4), port=PSAM_PORT).start()
    server = PrinterSimServer(model).start()
    return World(tmp / "station", cms, model, server, encoder, psam)
