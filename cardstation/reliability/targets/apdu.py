"""The card simulator's APDU handling: any APDU, alone or in a sequence after a realistic
prelude, is answered with data + a valid status word (never an exception, never 6F00)."""

from __future__ import annotations

import copy
import random
from typing import Any

from hypothesis import strategies as st

from cardstation.reliability.fuzz_target import MUTANTS, Target, mutate
from cardstation.simulators.card import SW_MEANINGS, Psam, SmartCard, make_card

PROFILES = ("blank3", "blank2", "temporary")
KNOWN_INS = list(bytes.fromhex("A4B2DCB0D684828820 5E24A8C0DEFA".replace(" ", "")))
P1S = list(bytes.fromhex("0001020405488796"))
P2S = list(bytes.fromhex("00040C122C283430"))
CLAS = [0x00, 0x80, 0x84, 0xBF]
SSSE = bytes.fromhex("00A404000F7378312E73682EC9E7BBE1B1A3D5CF")
PRELUDES = (
    (),
    (SSSE,),
    (SSSE, bytes.fromhex("00A4020002EF05")),
    (SSSE, bytes.fromhex("0084000008")),
    (bytes.fromhex("00A4040008A000000333010101"),),
)
PSAM_PRELUDES = (
    (),
    (bytes.fromhex("00A4040006D15600000590"),),
    (bytes.fromhex("00A4040006D15600000590"), bytes.fromhex("BFDE481218" + "11" * 24)),
)


def valid_sw(sw: int) -> bool:
    """A status word the card may answer (6F00 would be an internal error of its OS)."""
    hi, lo = sw >> 8, sw & 0xFF
    if sw == 0x6F00:
        return False
    return sw in SW_MEANINGS or hi in (0x61, 0x6C) or (hi == 0x63 and lo & 0xF0 == 0xC0)


def check_answer(card: SmartCard, apdu: bytes) -> None:
    """Send one APDU; AssertionError unless the answer is data + a valid status word."""
    resp = card.process_apdu(apdu)
    assert isinstance(resp, bytes) and len(resp) >= 2, f"{apdu.hex()} -> {resp!r}"
    sw = int.from_bytes(resp[-2:], "big")
    assert valid_sw(sw), f"{apdu.hex()} -> {resp.hex()}"
    if sw != 0x9000:
        assert len(resp) == 2, f"{apdu.hex()} -> {resp.hex()}"  # only 9000 carries data


@st.composite
def apdus(draw: st.DrawFn) -> bytes:
    """Structured APDUs near the card's commands (every ISO case, truncated too), plus raw
    garbage."""
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


_TEMPLATES = {name: make_card(name) for name in PROFILES}


def _make() -> dict[str, Any]:
    cards: dict[str, Any] = {name: copy.deepcopy(card) for name, card in _TEMPLATES.items()}
    cards["psam"] = Psam()
    for card in cards.values():
        card.power_on()
    return cards


def _feed(cards: dict[str, Any], example: tuple[str, int, list[bytes]]) -> None:
    name, prelude, seq = example
    card = cards[name]
    preludes = PSAM_PRELUDES if name == "psam" else PRELUDES
    for apdu in (*preludes[prelude % len(preludes)], *seq):
        check_answer(card, apdu)


def _expand(example: tuple[str, int, list[bytes]], rng: random.Random) -> list[Any]:
    name, prelude, seq = example
    out: list[Any] = [example]
    for _ in range(MUTANTS):
        i = rng.randrange(len(seq))
        out.append((name, prelude, [*seq[:i], mutate(seq[i], rng), *seq[i + 1:]]))
    return out


def _alive(cards: dict[str, Any]) -> None:
    for name, card in cards.items():
        card.power_off()
        card.power_on()
        if name == "psam":  # SELECT of the PSAM's application
            answer = card.process_apdu(PSAM_PRELUDES[1][0])
            assert answer[-2:] == b"\x90\x00" or answer[0] == 0x61, answer.hex()
        else:
            assert card.process_apdu(SSSE)[0] == 0x61, name


TARGET = Target(
    name="apdu",
    strategy=st.tuples(st.sampled_from([*PROFILES, "psam"]), st.integers(0, 4),
                       st.lists(apdus(), min_size=1, max_size=8)),
    make=_make,
    feed=_feed,
    documented=(),  # the card answers everything with a status word: it never raises
    alive=_alive,
    expand=_expand,
)
