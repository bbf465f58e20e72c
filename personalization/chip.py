"""One card under the encoder: identify it, read it, write what differs, verify, read the PAN.

The session never holds a key: each external authentication asks the key service for the
cryptogram over a fresh card challenge. Reads come first, so a chip that already carries
another holder's data is refused and one that already carries this holder's data is not
rewritten (only items whose bytes differ are written).
"""

from __future__ import annotations

from dataclasses import dataclass

from cardstation.drivers.pcsc.errors import RecordNotFound
from cardstation.drivers.pcsc.ssc import ITEMS, SscCard, decode_value
from cardstation.drivers.pcsc.transport import ApduTransport

from .keys.service import KeyService
from .profiles import ChipProfile, profile_for


class ChipBelongsToAnotherHolder(RuntimeError):
    """The chip already carries a different holder's ID number."""


class ChipVerificationFailed(RuntimeError):
    """Read-back differs from what was written."""


@dataclass(frozen=True)
class ChipFacts:
    atr: str  # hex
    card_id_code: str  # 32 hex
    spec_version: str
    algorithm: int
    profile: str

    @property
    def city6(self) -> str:
        return self.card_id_code[:6]


class ChipSession:
    def __init__(self, transport: ApduTransport, keys: KeyService) -> None:
        self.card = SscCard(transport)
        self.keys = keys
        self.facts: ChipFacts | None = None
        self.profile: ChipProfile | None = None

    def open(self) -> ChipFacts:
        algorithm = self.card.select_ssse()
        self.profile = profile_for(algorithm)
        self.facts = ChipFacts(
            atr=self.card.t.atr.hex().upper(),
            card_id_code=self.card.read_item("card_id_code"),
            spec_version=self.card.read_item("spec_version"),
            algorithm=algorithm,
            profile=self.profile.name,
        )
        return self.facts

    def authenticate(self, key_id: int) -> None:
        """External authentication with `key_id`; the key service computes the cryptogram."""
        assert self.facts is not None, "open() first"
        challenge = self.card.get_challenge(8)
        data = self.keys.external_auth(key_id, self.card.t.atr, self.facts.city6, challenge,
                                       self.facts.algorithm)
        self.card.external_authenticate(key_id, data)

    def read_items(self, items: tuple[str, ...] | list[str]) -> dict[str, bytes]:
        """Raw bytes of each item (b"" when the record does not exist yet)."""
        assert self.profile is not None, "open() first"
        self.card.select_ssse()  # a fresh security state, then the read key if one is needed
        if self.profile.read_key is not None:
            self.authenticate(self.profile.read_key)
        values: dict[str, bytes] = {}
        for item in items:
            try:
                values[item] = self.card.read_item_raw(item)
            except RecordNotFound:
                values[item] = b""
        return values

    def holder_id_number(self) -> str:
        return decode_value(ITEMS["id_number"], self.read_items(["id_number"])["id_number"])

    def write(self, values: dict[str, bytes], id_number: str) -> list[str]:
        """Write the items whose chip bytes differ from `values`; return their names.

        Refuses (before writing anything) a chip holding another holder's ID number."""
        current = self.read_items(list(values))
        on_chip = decode_value(ITEMS["id_number"], current.get("id_number", b""))
        if on_chip and on_chip != id_number:
            raise ChipBelongsToAnotherHolder(
                "this card's chip already belongs to another holder: put it aside, do not "
                "issue it, and feed a new blank card"
            )
        todo = [item for item, value in values.items() if current.get(item) != value]
        if todo:
            assert self.profile is not None
            self.card.select_ssse()
            self.authenticate(self.profile.write_key)
            for item in todo:
                self.card.write_item(item, values[item])
        return todo

    def verify(self, values: dict[str, bytes]) -> dict[str, bytes]:
        """Read every item back and compare; return what the chip holds."""
        back = self.read_items(list(values))
        wrong = [item for item, value in values.items() if back.get(item) != value]
        if wrong:
            raise ChipVerificationFailed(
                f"read-back differs from what was written for: {', '.join(wrong)}"
            )
        return back

    def read_pan(self) -> str:
        return self.card.read_pan()
