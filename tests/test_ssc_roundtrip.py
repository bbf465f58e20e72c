"""Every item of every chip profile round-trips encode -> card -> decode (issue 14, item 1).

The values are random but valid, and the strategies lean on the edge that once lost data: a
fixed-length cn item whose last nibbles are F (the 32-digit card identification code is hex and
ends in F on about 1 card in 16), and every item at its maximal length.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cardstation.drivers.pcsc.ssc import ITEMS, SscCard, decode_value, encode_value
from cardstation.drivers.pcsc.transport import InProcessTransport
from cardstation.personalization.chip import ChipSession
from cardstation.personalization.keys.service import SoftwareKeyService
from cardstation.personalization.model import Application
from cardstation.personalization.profiles import PROFILES, ChipProfile
from cardstation.personalization.rules import split_name_gbk
from cardstation.simulators.card import make_card

REGION = "410700"  # the simulated cards' region; the card identification code keeps it
HEX = "0123456789ABCDEF"
DIGITS = "0123456789"
# GB2312 level-1 hanzi (rows B0-D7): two GBK bytes each, none of them 00 or FF.
HANZI = st.builds(lambda hi, lo: bytes([hi, lo]).decode("gbk"),
                  st.integers(0xB0, 0xD7), st.integers(0xA1, 0xF9))
PROFILE_LIST = sorted(PROFILES.values(), key=lambda p: p.name)
VENDOR_ITEMS = ("card_id_code", "card_type", "spec_version", "init_org")


def _fixed(alphabet: str, n: int) -> st.SearchStrategy[str]:
    return st.text(alphabet, min_size=n, max_size=n)


def _id_number() -> st.SearchStrategy[str]:
    return st.builds(str.__add__, _fixed(DIGITS, 17), st.sampled_from(list(DIGITS + "X")))


def _name() -> st.SearchStrategy[str]:
    # 1..25 hanzi: up to 15 fill tag 09 (30 bytes), the rest (up to 10) fill tag 4E (20 bytes)
    return st.lists(HANZI, min_size=1, max_size=25).map("".join)


def _hex_ending_in_f(n: int) -> st.SearchStrategy[str]:
    """n hex digits: random, or forced to end in one or more F nibbles (the lost-digit case)."""
    return st.one_of(
        _fixed(HEX, n),
        st.builds(lambda head, k: (head + "F" * k)[-n:],
                  _fixed(HEX, n), st.integers(1, 8)),
    )


STRATEGIES: dict[str, st.SearchStrategy[str]] = {
    "card_id_code": st.builds(lambda s: REGION + "D156000005" + s, _hex_ending_in_f(16)),
    "card_type": st.sampled_from(["1", "2", "3", "4"]),
    "spec_version": st.sampled_from(["2.00", "3.00"]),
    "init_org": st.builds(lambda s: "9156000002" + s, _hex_ending_in_f(14)),
    "issue_date": _fixed(DIGITS, 8),
    "expiry_date": _fixed(DIGITS, 8),
    "card_number": st.builds(str.__add__, st.sampled_from(list("ABCDEFGHJKLMNPQRSTUVWXYZ")),
                             _fixed(DIGITS + "X", 8)),
    "id_number": _id_number(),
    "name": _name(),
    "sex": st.sampled_from(["1", "2", "9"]),
    "nation": _fixed(DIGITS, 2),
    "birthplace": _fixed(DIGITS, 6),
    "birth_date": _fixed(DIGITS, 8),
}
WRITTEN = ("name", "name_ext")  # the name is one value written as two items


def _session(profile: ChipProfile) -> tuple[ChipSession, SscCard]:
    card = make_card("blank3" if profile.generation >= 3 else "blank2")
    transport = InProcessTransport(card)
    transport.connect()
    session = ChipSession(transport, SoftwareKeyService(test_keys_allowed=True))
    session.open()
    return session, session.card


def _values(data: st.DataObject, items: tuple[str, ...]) -> dict[str, str]:
    return {name: data.draw(STRATEGIES[name], label=name)
            for name in items if name not in WRITTEN} | (
        {"name": data.draw(STRATEGIES["name"], label="name")} if "name" in items else {})


def _raw(values: dict[str, str]) -> dict[str, bytes]:
    out = {}
    for name, value in values.items():
        if name == "name":
            out["name"], out["name_ext"] = split_name_gbk(value)
        else:
            out[name] = encode_value(ITEMS[name], value)
    return out


@pytest.mark.parametrize("profile", PROFILE_LIST, ids=lambda p: p.name)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_profile_item_round_trips_through_the_card(profile: ChipProfile,
                                                         data: st.DataObject) -> None:
    """Item table: 社会保障卡文件结构和数据项 V2.0 表9/表10/表12 (formats, lengths, fixed
    digit counts); the code that ends in F: ssc-chip.md corrections 2026-12-01."""
    items = tuple(dict.fromkeys(profile.items + VENDOR_ITEMS))
    values = _values(data, items)
    session, card = _session(profile)
    raw = _raw(values)
    session.write(raw, values["id_number"])
    session.verify(raw)
    back = session.read_items(list(raw))
    for name, value in values.items():
        if name == "name":
            got = decode_value(ITEMS["name"], back["name"]) + decode_value(
                ITEMS["name_ext"], back["name_ext"])
        else:
            got = decode_value(ITEMS[name], back[name])
            assert card.read_item(name) == value, name  # the driver's own read path
        assert got == value, name


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_encode_decode_is_lossless_for_every_item(data: st.DataObject) -> None:
    """Same tables as above, without a card: decode(encode(v)) == v for every item."""
    for name, strategy in STRATEGIES.items():
        value = data.draw(strategy, label=name)
        if name == "name":
            head, tail = split_name_gbk(value)
            got = decode_value(ITEMS["name"], head) + decode_value(ITEMS["name_ext"], tail)
        else:
            got = decode_value(ITEMS[name], encode_value(ITEMS[name], value))
        assert got == value, name


@pytest.mark.parametrize("code", [
    REGION + "D156000005C38275EEFC9B964F",   # last nibble F (1 card in 16)
    REGION + "D1560000050000000FFFFFFFFF",   # uninitialised authenticator tail
    "639900D15600000500BF7C7A48FB4966",      # a recorded code (ssc-chip.md 5.1, S4)
])
def test_card_identification_code_ending_in_f_keeps_every_digit(code: str) -> None:
    """Golden, ssc-chip.md corrections 2026-12-01 and 社会保障卡文件结构和数据项 V2.0 表10:
    the 卡识别码 is 16 bytes of cn, fixed length, so a trailing F is data."""
    if not code.startswith(REGION):
        raw = encode_value(ITEMS["card_id_code"], code)
        assert decode_value(ITEMS["card_id_code"], raw) == code
        return
    session, card = _session(PROFILES[0x03])
    session.write({"card_id_code": encode_value(ITEMS["card_id_code"], code)}, "")
    assert card.read_item("card_id_code") == code
    assert len(card.read_item("card_id_code")) == 32


def test_fixed_cn_items_refuse_short_or_foreign_values() -> None:
    """社会保障卡文件结构和数据项 V2.0 表9: a date is 4 bytes of cn, a region code 3."""
    with pytest.raises(ValueError, match="exactly 8 decimal digits"):
        encode_value(ITEMS["issue_date"], "2024011")
    with pytest.raises(ValueError, match="exactly 6 decimal digits"):
        encode_value(ITEMS["birthplace"], "41070A")
    with pytest.raises(ValueError, match="exactly 32 hex digits"):
        encode_value(ITEMS["card_id_code"], "410700D156000005")


def test_unwritten_fixed_cn_item_reads_empty() -> None:
    """The card pads an unwritten cn item with F (V2.0 section 7); that is no value."""
    assert decode_value(ITEMS["issue_date"], b"\xff" * 4) == ""
    assert decode_value(ITEMS["card_id_code"], b"") == ""


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_profile_values_round_trip_from_an_application(data: st.DataObject) -> None:
    """ChipProfile.values -> card -> decode gives back the application's fields (V2.0 表9)."""
    draw = {n: data.draw(STRATEGIES[n], label=n) for n in (
        "id_number", "name", "sex", "nation", "birth_date", "birthplace", "card_number",
        "issue_date", "expiry_date")}
    app = Application(bank_name="", batch="", **draw)
    for profile in PROFILE_LIST:
        session, _ = _session(profile)
        values = profile.values(app)
        session.write(values, app.id_number)
        back = session.verify(values)
        for name in profile.items:
            if name in WRITTEN:
                continue
            assert decode_value(ITEMS[name], back[name]) == draw[name], (profile.name, name)
        name = decode_value(ITEMS["name"], back["name"]) + decode_value(ITEMS["name_ext"],
                                                                        back["name_ext"])
        assert name == app.name
