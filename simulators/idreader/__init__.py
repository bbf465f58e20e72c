"""Simulated GA 467 resident-ID-card reader (ssc-chip.md §12): device model and pty server.

    sim = IdReaderSimulator()          # the generated sample card is on the reader
    path = sim.start()                 # /dev/pts/N, open it with pyserial or Ga467Reader
    sim.inject("no_card"); sim.clear_faults(); sim.remove(); sim.place(card); sim.stop()
"""

from cardstation.simulators.idreader.model import (
    FAULTS,
    SAMPLE_CARD,
    SAMPLE_ID_NUMBER,
    IdReaderModel,
    make_card,
)
from cardstation.simulators.idreader.pty import IdReaderSimulator

__all__ = [
    "FAULTS",
    "SAMPLE_CARD",
    "SAMPLE_ID_NUMBER",
    "IdReaderModel",
    "IdReaderSimulator",
    "make_card",
]
