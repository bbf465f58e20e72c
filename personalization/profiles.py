"""Chip profiles: what the station writes on a card of each generation, and how it checks it.

A profile is declarative: the SSSE items written (in order), the key that opens writing, the key
(if any) that opens reading, and the item values derived from an application. The pipeline
writes only items whose current chip value differs, then reads every item back and compares.
"""

from __future__ import annotations

from dataclasses import dataclass

from cardstation.drivers.pcsc.ssc import ITEMS, encode_value

from .model import Application
from .rules import split_name_gbk

HOLDER_ITEMS = ("id_number", "name", "name_ext", "sex", "nation", "birthplace", "birth_date")
ISSUER_ITEMS = ("issue_date", "expiry_date", "card_number")

#: EVIDENCE-BASED CHOICE, kept here only: the items of a 3rd-generation card readable without the
#: read key (RKSSSE). Recorded iReadCardBas outputs of real 3.0 cards read without
#: authentication (leithergit/SSCard_System, SSCard_System/Gloabal.cpp, 2025 snapshot):
#: `411600|||411600D156000005C38275EEFC9B9648||008C544CB386844116018593CA|3.00|20211203|20311202|`
#: carry the card identification code, the spec version and the issue and expiry dates, and no
#: card number, ID number or name. The reference (ssc-chip.md 8.3 and 13) said the opposite
#: (card number free, dates protected); the recorded outputs are followed. The card type and
#: the initialising institution are not in that output and stay protected (no evidence).
#: The card simulator builds its 3rd-generation access rules from this set.
GEN3_FREE_READ: frozenset[str] = frozenset({"card_id_code", "spec_version", "issue_date",
                                            "expiry_date"})


@dataclass(frozen=True)
class ChipProfile:
    name: str
    generation: int
    algorithm: int  # SSSE FCI algorithm flag: 01 3DES, 03 SM4
    write_key: int  # external-auth key id opening EF05/EF06 writes (UKSSSE)
    read_key: int | None  # key id opening holder reads (RKSSSE on 3rd gen), None = free
    items: tuple[str, ...]
    #: after the basic data: read the signing public key, fetch certificates from the CMS,
    #: write them (3rd generation; formats in cert_assumptions.py)
    certificates: bool = False

    def values(self, app: Application) -> dict[str, bytes]:
        """Each item's exact bytes on the chip (padded as the card stores them)."""
        tag09, tag4e = split_name_gbk(app.name)
        text = {
            "id_number": app.id_number, "sex": app.sex, "nation": app.nation,
            "birthplace": app.birthplace, "birth_date": app.birth_date,
            "issue_date": app.issue_date, "expiry_date": app.expiry_date,
            "card_number": app.card_number,
        }  # fmt: skip
        raw: dict[str, str | bytes] = {**text, "name": tag09, "name_ext": tag4e}
        return {item: encode_value(ITEMS[item], raw[item]) for item in self.items}


THIRD_GENERATION = ChipProfile("ssc-3.0-sm4", 3, 0x03, 0x04, 0x0A, HOLDER_ITEMS + ISSUER_ITEMS,
                               certificates=True)
SECOND_GENERATION = ChipProfile("ssc-2.0-3des", 2, 0x01, 0x04, None,
                                HOLDER_ITEMS + ISSUER_ITEMS)
PROFILES = {p.algorithm: p for p in (THIRD_GENERATION, SECOND_GENERATION)}


def profile_for(algorithm: int) -> ChipProfile:
    """The profile for a card whose SSSE announces `algorithm` (FCI 9F0C 86 01 xx)."""
    try:
        return PROFILES[algorithm]
    except KeyError:
        raise ValueError(
            f"no chip profile for algorithm flag {algorithm:02X} (known: 01 3DES, 03 SM4)"
        ) from None
