"""A whole simulated station in one process: printer model + TCP server, encoder and PSAM slots.

Used by `cardstation demo` and end-to-end tests. The card and PSAM simulators reach the station
through the real pcscd + vpcd path; the printer through its TCP server (socket://).
"""

from __future__ import annotations

from pathlib import Path

from cardstation.personalization.keys.scheme import Alg
from cardstation.simulators.card import Psam, make_card
from cardstation.simulators.coupling import EncoderCoupler
from cardstation.simulators.printer.model import PrinterModel
from cardstation.simulators.printer.server import PrinterSimServer
from cardstation.simulators.vpcd.link import VpcdLink

ENCODER_PORT = 35963
PSAM_PORT = 35964


class SimulatedStation:
    def __init__(self, output_dir: Path, speed: float = 0.0, blank_cards: int = 3,
                 first_serial: int = 0x30000101) -> None:
        self.model = PrinterModel(speed=speed, output_dir=output_dir)
        self.encoder = VpcdLink(port=ENCODER_PORT)
        self.psam = VpcdLink(Psam(alg=Alg.SM4), port=PSAM_PORT)
        self.coupler = EncoderCoupler(self.model, self.encoder)
        self.chips = [make_card("blank3", serial=first_serial + i) for i in range(blank_cards)]
        for chip in self.chips:
            self.model.load_card("right_way", chip=chip)
        self.server = PrinterSimServer(self.model, "127.0.0.1:0")

    @property
    def printer_url(self) -> str:
        return self.server.url

    def start(self) -> SimulatedStation:
        self.encoder.start()
        self.psam.start()
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.close()
        self.encoder.stop()
        self.psam.stop()

    def __enter__(self) -> SimulatedStation:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
