"""Couple the simulated printer to the encoder's vpcd slot: the chip follows the card.

When the printer model moves a card to the contact station, that card's chip is inserted into
the encoder reader's slot; when the card leaves, the chip leaves. A card loaded the wrong way
(or without a chip) puts no chip under the contacts: the slot then holds a card that never
answers reset, so PC/SC reports the chip power-on failure as a real encoder would.
"""

from __future__ import annotations

import logging
from typing import Any

from cardstation.simulators.printer.cards import Orientation
from cardstation.simulators.printer.model import PrinterModel
from cardstation.simulators.vpcd.link import VpcdLink
from cardstation.simulators.vpcd.nochip import NoChipUnderContacts

log = logging.getLogger(__name__)


class EncoderCoupler:
    """Wires `model`'s contact-station hooks to `link` (the encoder slot)."""

    def __init__(self, model: PrinterModel, link: VpcdLink) -> None:
        self.model = model
        self.link = link
        self.encoder_plugged = True
        self._present: Any = None
        model.on_contact_enter = self._card_arrived
        model.on_contact_leave = self._card_left
        model.on_encoder_unplugged = self._unplugged
        model.on_encoder_plugged = self._plugged

    def _card_arrived(self, card: Any) -> None:
        if card.orientation is Orientation.RIGHT_WAY and card.chip is not None:
            self._present = card.chip
        else:
            self._present = NoChipUnderContacts()
        log.debug("card at contact station (%s)", card.orientation.value)
        if self.encoder_plugged:
            self.link.insert(self._present)

    def _card_left(self, card: Any) -> None:
        self._present = None
        self.link.remove()

    def _unplugged(self) -> None:
        # The reader itself cannot leave pcscd's list (vpcd's slots are fixed), so an unplugged
        # encoder shows as a reader that never sees a card.
        self.encoder_plugged = False
        self.link.remove()

    def _plugged(self) -> None:
        self.encoder_plugged = True
        if self._present is not None:
            self.link.insert(self._present)
