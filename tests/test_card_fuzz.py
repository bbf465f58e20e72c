"""Fuzz: random APDUs and APDU sequences never make the card or PSAM raise, hang or answer with
anything but data + a valid status word (and never 6F00, which would mean an internal error)."""

from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cardstation.reliability.targets.apdu import PRELUDES, PSAM_PRELUDES, SSSE, apdus
from cardstation.reliability.targets.apdu import check_answer as _check
from cardstation.simulators.card import Psam, SmartCard, make_card

# the strategies and the answer check are the ones `make fuzz` uses (reliability.targets.apdu)
_TEMPLATES = {name: make_card(name) for name in ("blank3", "blank2", "temporary")}


def _fresh(profile: str) -> SmartCard:
    card = copy.deepcopy(_TEMPLATES[profile])
    card.power_on()
    return card


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(apdu=apdus(), profile=st.sampled_from(sorted(_TEMPLATES)))
def test_single_apdu_on_fresh_card(apdu: bytes, profile: str) -> None:
    _check(_fresh(profile), apdu)


@FUZZ
@given(
    seq=st.lists(apdus(), max_size=12),
    prelude=st.sampled_from(list(PRELUDES)),
    profile=st.sampled_from(sorted(_TEMPLATES)),
)
def test_apdu_sequences_on_card(seq: list[bytes], prelude: tuple[bytes, ...], profile: str) -> None:
    card = _fresh(profile)
    for apdu in [*prelude, *seq]:
        _check(card, apdu)
    # the card still works afterwards
    card.power_off()
    card.power_on()
    assert card.process_apdu(SSSE)[0] == 0x61


@FUZZ
@given(seq=st.lists(apdus(), min_size=1, max_size=12), prelude=st.sampled_from(list(PSAM_PRELUDES)))
def test_apdu_sequences_on_psam(seq: list[bytes], prelude: tuple[bytes, ...]) -> None:
    psam = Psam()
    psam.power_on()
    for apdu in [*prelude, *seq]:
        _check(psam, apdu)
