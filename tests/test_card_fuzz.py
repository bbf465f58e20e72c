"""Fuzz: random APDUs and APDU sequences never make the card or PSAM raise, hang or answer with
anything but data + a valid status word (and never 6F00, which would mean an internal error)."""

from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cardstation.simulators.card import SW_MEANINGS, Psam, SmartCard, make_card

_TEMPLATES = {name: make_card(name) for name in ("blank3", "blank2", "temporary")}

KNOWN_INS = list(bytes.fromhex("A4B2DCB0D684828820 5E24A8C0DEFA".replace(" ", "")))
P1S = list(bytes.fromhex("0001020405488796"))
P2S = list(bytes.fromhex("00040C122C283430"))
CLAS = [0x00, 0x80, 0x84, 0xBF]


def _valid_sw(sw: int) -> bool:
    hi, lo = sw >> 8, sw & 0xFF
    if sw == 0x6F00:
        return False  # internal error inside the card OS
    return sw in SW_MEANINGS or hi in (0x61, 0x6C) or (hi == 0x63 and lo & 0xF0 == 0xC0)


def _check(card: SmartCard, apdu: bytes) -> None:
    resp = card.process_apdu(apdu)
    assert isinstance(resp, bytes) and len(resp) >= 2
    sw = int.from_bytes(resp[-2:], "big")
    assert _valid_sw(sw), f"{apdu.hex()} -> {resp.hex()}"
    if sw != 0x9000:
        assert len(resp) == 2  # only 9000 carries data (61xx/6Cxx too: T=0)


@st.composite
def apdus(draw: st.DrawFn) -> bytes:
    """Structured APDUs near the card's commands, plus raw garbage."""
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=300))
    cla = draw(st.sampled_from(CLAS) | st.integers(0, 255))
    ins = draw(st.sampled_from(KNOWN_INS) | st.integers(0, 255))
    p1 = draw(st.sampled_from(P1S) | st.integers(0, 255))
    p2 = draw(st.sampled_from(P2S) | st.integers(0, 255))
    data = draw(st.binary(max_size=40))
    head = bytes([cla, ins, p1, p2])
    case = draw(st.integers(1, 5))
    if case == 1:
        return head
    le = bytes([draw(st.integers(0, 255))])
    if case == 2 or not data:
        return head + le
    body = head + bytes([len(data)]) + data
    if case == 3:
        return body
    if case == 4:
        return body + le
    return body[: draw(st.integers(4, len(body)))]  # truncated


def _fresh(profile: str) -> SmartCard:
    card = copy.deepcopy(_TEMPLATES[profile])
    card.power_on()
    return card


SSSE = bytes.fromhex("00A404000F7378312E73682EC9E7BBE1B1A3D5CF")
PRELUDES = [
    [],
    [SSSE],
    [SSSE, bytes.fromhex("00A4020002EF05")],
    [SSSE, bytes.fromhex("0084000008")],
    [bytes.fromhex("00A4040008A000000333010101")],
]

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(apdu=apdus(), profile=st.sampled_from(sorted(_TEMPLATES)))
def test_single_apdu_on_fresh_card(apdu: bytes, profile: str) -> None:
    _check(_fresh(profile), apdu)


@FUZZ
@given(
    seq=st.lists(apdus(), max_size=12),
    prelude=st.sampled_from(PRELUDES),
    profile=st.sampled_from(sorted(_TEMPLATES)),
)
def test_apdu_sequences_on_card(seq: list[bytes], prelude: list[bytes], profile: str) -> None:
    card = _fresh(profile)
    for apdu in [*prelude, *seq]:
        _check(card, apdu)
    # the card still works afterwards
    card.power_off()
    card.power_on()
    assert card.process_apdu(SSSE)[0] == 0x61


PSAM_PRELUDES = [
    [],
    [bytes.fromhex("00A4040006D15600000590")],
    [bytes.fromhex("00A4040006D15600000590"), bytes.fromhex("BFDE481218" + "11" * 24)],
]


@FUZZ
@given(seq=st.lists(apdus(), min_size=1, max_size=12), prelude=st.sampled_from(PSAM_PRELUDES))
def test_apdu_sequences_on_psam(seq: list[bytes], prelude: list[bytes]) -> None:
    psam = Psam()
    psam.power_on()
    for apdu in [*prelude, *seq]:
        _check(psam, apdu)
