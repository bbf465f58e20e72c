"""The CMS simulator's card-life rules through the reference client: one outstanding card per
holder, no enablement with a temporary card out, a replacement only after a formal loss
report; every refusal a port error with cause and remedy, ID numbers masked; the state file
keeps the card's life over a restart."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from cardstation.personalization.cms import CmsClient
from cardstation.personalization.model import IntakeApplication, ReturnRecord
from cardstation.personalization.ports.cms import (
    CardMismatch,
    CardStateInvalid,
    CmsError,
    FormalLossRequired,
    HolderHasCard,
    TemporaryCardOutstanding,
)
from cardstation.simulators.cms import CmsSimulator
from cardstation.simulators.cms.applicants import generate_applicants
from cardstation.simulators.cms.conformance import intake_of

CODE = "AB" * 16
TEMP = "CD" * 16


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[CmsSimulator]:
    with CmsSimulator(seed=8, state_path=tmp_path / "cms.json") as simulator:
        simulator.start()
        yield simulator


@pytest.fixture
def cms(sim: CmsSimulator) -> CmsClient:
    return CmsClient(sim.base_url, "410700-W01", connect_timeout=1, read_timeout=3)


@pytest.fixture
def holder() -> IntakeApplication:
    return intake_of(generate_applicants(1, 77)[0])


def refused(error: type[CmsError], call, holder: IntakeApplication) -> CmsError:
    with pytest.raises(error) as caught:
        call()
    text = str(caught.value)
    assert " — " in text and holder.id_number not in text  # cause — remedy, masked
    return caught.value


def make(cms: CmsClient, holder: IntakeApplication, key: str) -> None:
    cms.register_fee(holder.id_number)
    cms.mark_instant_issuance(holder.id_number)
    app = cms.fetch(holder.id_number)
    cms.claim(holder.id_number)
    cms.submit_return(ReturnRecord(app.card_number, app.id_number, app.name, app.issue_date,
                                   app.expiry_date, CODE, "3B00", "6217000000000000001",
                                   app.batch), key)


def test_one_outstanding_card_per_holder(cms: CmsClient, sim: CmsSimulator,
                                         holder: IntakeApplication) -> None:
    cms.submit_application(holder, "k1")
    refused(HolderHasCard, lambda: cms.submit_application(holder, "k2"), holder)
    # a holder the CMS already had (a seeded, ready application) gets none either
    seeded = sim.samples["ready"][1]
    refused(HolderHasCard, lambda: cms.submit_application(replace(holder, id_number=seeded),
                                                          "k3"), holder)
    make(cms, holder, "r1")
    cms.enable_card(holder.id_number, CODE)
    refused(HolderHasCard, lambda: cms.submit_application(holder, "k4"), holder)
    cms.cancel_card(holder.id_number, "deceased")
    assert cms.submit_application(holder, "k5").startswith("SQ")


def test_no_enablement_while_a_temporary_card_is_out(cms: CmsClient,
                                                     holder: IntakeApplication) -> None:
    cms.submit_application(holder, "k1")
    refused(CardStateInvalid, lambda: cms.enable_card(holder.id_number, CODE), holder)
    make(cms, holder, "r1")
    cms.record_temporary_card(TEMP, holder.id_number, holder.name, "20260101", "20260401")
    error = refused(TemporaryCardOutstanding, lambda: cms.enable_card(holder.id_number, CODE),
                    holder)
    assert "before enabling" in str(error)
    assert cms.card_life(holder.id_number).temporary_card_out
    refused(CardMismatch, lambda: cms.enable_card(holder.id_number, "EF" * 16), holder)
    cms.recall_temporary_card(TEMP)
    cms.enable_card(holder.id_number, CODE)
    life = cms.card_life(holder.id_number)
    assert (life.state, life.card_id_code, life.temporary_card_out) == ("active", CODE, False)


def test_replacement_only_after_a_formal_loss_report(cms: CmsClient, sim: CmsSimulator,
                                                     holder: IntakeApplication) -> None:
    cms.submit_application(holder, "k1")
    make(cms, holder, "r1")
    refused(CardStateInvalid, lambda: cms.report_loss(holder.id_number, "formal"), holder)
    cms.enable_card(holder.id_number, CODE)
    old = cms.card_life(holder.id_number)
    refused(FormalLossRequired, lambda: cms.apply_replacement(holder.id_number, "lost"), holder)
    cms.report_loss(holder.id_number, "temporary")
    refused(FormalLossRequired, lambda: cms.apply_replacement(holder.id_number, "lost"), holder)
    cms.report_loss(holder.id_number, "formal")
    refused(CardStateInvalid, lambda: cms.report_loss(holder.id_number, "temporary"), holder)
    number = cms.apply_replacement(holder.id_number, "lost", "中国建设银行")
    new = cms.card_life(holder.id_number)
    assert (new.state, new.replaces, new.bank_name) == ("applied", old.card_number, "中国建设银行")
    assert new.card_number != old.card_number and number.startswith("SQ")
    # the card's life survives a restart of the CMS (the state file)
    sim.stop()
    with CmsSimulator(seed=8, state_path=sim.ledger_store._state_path) as again:
        again.start()
        life = CmsClient(again.base_url, "410700-W01").card_life(holder.id_number)
    assert (life.state, life.replaces) == ("applied", old.card_number)


def test_the_cms_refuses_an_incomplete_application(cms: CmsClient,
                                                   holder: IntakeApplication) -> None:
    error = refused(CmsError, lambda: cms.submit_application(
        replace(holder, bank_name="待定"), "k1"), holder)
    assert "bank_name" in str(error)


def test_lift_and_repeat_are_harmless(cms: CmsClient, holder: IntakeApplication) -> None:
    cms.submit_application(holder, "k1")
    make(cms, holder, "r1")
    cms.enable_card(holder.id_number, CODE)
    cms.lift_loss(holder.id_number)  # nothing to lift on an active card: acknowledged
    cms.report_loss(holder.id_number, "temporary")
    cms.report_loss(holder.id_number, "temporary")
    cms.lift_loss(holder.id_number)
    assert cms.card_life(holder.id_number).state == "active"
