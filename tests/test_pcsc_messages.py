"""Every PC/SC code and card status word the station names reaches the operator as
"cause — remedy": a damaged chip says so, a wrong-way or dirty chip says how to put the card in
and how to clean it, an unplugged reader names its cable."""

from __future__ import annotations

import pytest

from cardstation.drivers.pcsc import errors
from cardstation.drivers.pcsc.errors import (
    SW_TABLE,
    CardStatusError,
    PcscError,
    pcsc_error,
    raise_for_sw,
    winscard_codes,
)
from cardstation.drivers.pcsc.transport import InProcessTransport
from tests.support.fakecards import ScriptedCard

SEP = " — "


def assert_cause_and_remedy(exc: PcscError | CardStatusError) -> None:
    assert exc.cause.strip() and exc.remedy.strip(), repr(exc)
    assert SEP not in exc.cause, exc.cause  # one clean split for the console
    assert str(exc) == f"{exc.cause}{SEP}{exc.remedy}"
    assert len(exc.remedy) >= 20 and exc.remedy not in exc.cause


@pytest.mark.parametrize("code", sorted(winscard_codes()), ids=hex)
def test_every_winscard_code_has_cause_and_remedy(code: int) -> None:
    exc = pcsc_error(code, "connecting to the card", "Some Reader 00")
    assert type(exc) is winscard_codes()[code]
    assert f"0x{code:08X}" in exc.cause and exc.code == code and exc.reader == "Some Reader 00"
    assert_cause_and_remedy(exc)


def test_unknown_winscard_code_still_has_a_remedy() -> None:
    assert_cause_and_remedy(pcsc_error(0x80100099, "listing readers"))


def sw_error(sw: int) -> CardStatusError:
    with pytest.raises(CardStatusError) as info:
        raise_for_sw(sw, "update record")
    return info.value


@pytest.mark.parametrize("sw", [*sorted(SW_TABLE), 0x63C3, 0x63C0, 0x6F00, 0x6400],
                         ids=lambda sw: f"{sw:04X}")
def test_every_status_word_has_cause_and_remedy(sw: int) -> None:
    exc = sw_error(sw)
    assert exc.sw == sw and f"(SW {sw:04X})" in exc.cause and exc.cause.startswith("update record")
    if sw in SW_TABLE:
        assert type(exc) is SW_TABLE[sw][0]
    assert_cause_and_remedy(exc)


def test_every_error_class_has_a_default_remedy() -> None:
    classes = [c for c in vars(errors).values()
               if isinstance(c, type) and issubclass(c, PcscError | CardStatusError)]
    assert len(classes) > 20
    for cls in classes:
        exc = cls("cause", code=None) if issubclass(cls, PcscError) else cls(0x6F00, "cause")
        assert_cause_and_remedy(exc)


def test_the_faults_operators_meet_say_what_to_do() -> None:
    damaged = str(sw_error(0x6581))
    assert "memory failure (SW 6581)" in damaged and "chip is damaged" in damaged
    assert "reject box" in damaged
    for code in (errors.SCARD_W_UNRESPONSIVE_CARD, errors.SCARD_W_UNPOWERED_CARD):
        text = str(pcsc_error(code, "powering the chip"))
        assert "wrong way" in text and "dirty" in text and "wipe the chip" in text
    for code in (errors.SCARD_E_NO_READERS_AVAILABLE, errors.SCARD_E_UNKNOWN_READER,
                 errors.SCARD_E_READER_UNAVAILABLE, errors.SCARD_E_NO_SMARTCARD,
                 errors.SCARD_E_TIMEOUT):
        text = str(pcsc_error(code, "waiting for the card"))
        assert "USB cable" in text and "second" in text, text  # the encoder's own cable
    assert "pcscd" in str(pcsc_error(errors.SCARD_E_NO_SERVICE, "establishing a context"))
    locked = str(sw_error(0x6983))
    assert "解锁" in locked
    lost = str(pcsc_error(errors.SCARD_E_NOT_TRANSACTED, "sending a command"))
    assert "read the card again" in lost


def test_transport_messages_have_cause_and_remedy() -> None:
    with pytest.raises(PcscError) as info:
        InProcessTransport(None).connect()
    assert_cause_and_remedy(info.value)
    t = InProcessTransport(ScriptedCard({b"\x00\xb0\x00\x00\x00": b"\x90"}))
    with pytest.raises(PcscError) as info:
        t.transmit(b"\x00\xb0\x00\x00\x00")  # not connected
    assert_cause_and_remedy(info.value)
    t.connect()
    with pytest.raises(PcscError) as info:
        t.transmit(b"\x00\xb0\x00\x00\x00")  # one byte back: no status word
    assert_cause_and_remedy(info.value)
    assert info.value.reader == "in-process" and info.value.code is None
    t.card = None
    with pytest.raises(PcscError) as info:
        t.transmit(b"\x00\xb0\x00\x00\x00")
    assert_cause_and_remedy(info.value)
