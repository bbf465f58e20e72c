"""Test applicants of the CMS simulator for the conformance kit (`cardstation cms conformance
--simulate`, tests/test_cms_conformance.py): which sample is which role of a ConformanceBed.

The simulator's default ledger holds ready applicants and one not marked for instant issuance;
the unknown ID number, the temporary-card holder and the card-life newcomer are generated
people the ledger does not hold (new ones on each call, once the earlier ones are in it).
Card identification codes are random per call, so each run has cards of its own. The
certificate public key is a fresh P-256 point (the simulator's stand-in for SM2).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cardstation.personalization.model import Application, IntakeApplication
from cardstation.personalization.ports.cms_conformance import CardLifeBed, TemporaryCardBed
from cardstation.simulators.cms.applicants import generate_applicants
from cardstation.simulators.cms.server import CmsSimulator


@dataclass(frozen=True)
class SimulatedApplicants:
    ready: str
    ready2: str
    not_marked: str
    unknown: str
    temporary: TemporaryCardBed
    certificate_public_key: bytes
    card_life: CardLifeBed


def conformance_applicants(sim: CmsSimulator) -> SimulatedApplicants:
    """The roles, from a simulator started with its default ledger (`samples` filled)."""
    if not sim.samples:
        raise ValueError("the CMS simulator loaded a state file: its samples are unknown; "
                         "start it without --state")
    ledger = sim.ledger(photos=False)["applications"]
    taken = set(ledger) | {a["card_number"] for a in ledger.values()}
    # the seed differs from the ledger's so these people are new, and `exclude` makes sure
    unknown, holder, newcomer = generate_applicants(3, sim.seed + 1, exclude=taken)
    ready = sim.samples["ready"]
    return SimulatedApplicants(
        ready=ready[1], ready2=ready[2], not_marked=sim.samples["not_marked"],
        unknown=unknown.id_number,
        temporary=TemporaryCardBed(
            card_id_code=_card_id_code(), second_card_id_code=_card_id_code(),
            holder_id=holder.id_number, holder_name=holder.name,
            unknown_card_id_code=_card_id_code()),
        certificate_public_key=ec.generate_private_key(ec.SECP256R1()).public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint),
        card_life=CardLifeBed(intake_of(newcomer), _card_id_code()),
    )


def intake_of(person: Application, *, bank_name: str = "中国工商银行") -> IntakeApplication:
    """A complete new application (新增申请) of a generated person, as a window fills it."""
    address = "河南省新乡市红旗区人民路1号"
    return IntakeApplication(
        id_number=person.id_number, name=person.name, sex=person.sex, nation=person.nation,
        birth_date=person.birth_date, id_address=address, person_status="在职",
        hukou_type="城镇", hukou_address=address, phone="13800138000", postal_address=address,
        employer_name="新乡市示例有限公司", employer_code="41070000001", bank_name=bank_name,
        photo=person.photo)


def _card_id_code() -> str:
    return secrets.token_hex(16).upper()  # 32 hex, the shape of a 卡识别码
