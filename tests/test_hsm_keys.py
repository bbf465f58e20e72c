"""The HSM key service (issue 14 item 7) against its loopback simulator: call shapes, TLS,
serialization, errors and configuration. No pcscd needed."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from cardstation.config import Config, ConfigError
from cardstation.personalization.faults import fault_of
from cardstation.personalization.keys import hsm_wire as wire
from cardstation.personalization.keys.hsm import HsmKeyService, client_context
from cardstation.personalization.keys.scheme import (
    TEST_MASTER_KEYS,
    KeyUsage,
    internal_auth_expected,
)
from cardstation.personalization.keys.service import (
    KeyServiceError,
    KeyServiceUnavailable,
    SoftwareKeyService,
)
from cardstation.simulators.card import make_card
from cardstation.simulators.hsm import HsmSimulator, make_pki

CARD = make_card("blank3")
ATR = CARD.atr
CITY = CARD.city
CHALLENGE = bytes.fromhex("0102030405060708")


@pytest.fixture
def hsm(tmp_path) -> Iterator[HsmSimulator]:
    with HsmSimulator(tmp_path / "hsm") as sim:
        yield sim


def service(sim: HsmSimulator, **overrides: str) -> HsmKeyService:
    k = {**sim.keys_config(), **overrides}
    return HsmKeyService(k["hsm_address"], client_context(k["hsm_ca"], k["hsm_cert"],
                                                          k["hsm_key"]),
                         system_id=k["hsm_system_id"], terminal_code=k["hsm_terminal"],
                         timeout=2.0)


def test_call_shapes_follow_the_public_kiosk() -> None:
    """Source: leithergit/SSCard_System, SSCard_System/DataCenter.cpp `WriteCard` (2025
    snapshot): HSMInfo with business type 026 for writing and 028 for reading, algorithm code
    03, key address 0094, system id 410700006, and two randoms."""
    assert wire.BUSINESS_TYPE == {0x04: "026", 0x0A: "028"}
    assert wire.DEFAULT_KEY_ADDRESS == "0094"
    request = wire.external_auth_request(
        7, system_id="410700006", terminal_code="T1", key_address="0094",
        business_type="026", atr=ATR, city6=CITY, challenge=CHALLENGE, algorithm=0x03,
        context={"card_id_code": "41070000", "id_number": "11010519491231002X", "name": "张",
                 "name_ext": "三", "card_number": "A12345678", "issue_date": "20240101",
                 "expiry_date": "20340101", "sex": "2", "nation": "01",
                 "birth_date": "19491231"})
    assert request["op"] == "cardExternalAuth" and request["seq"] == 7
    assert (request["businessType"], request["algoCode"], request["keyAddr"]) == \
        ("026", "03", "0094")
    assert request["random1"] == CHALLENGE.hex().upper() and request["random2"] == ""
    assert request["cardATR"] == ATR.hex().upper() and request["regionCode"] == CITY
    assert (request["cardId"], request["name"], request["identifyNum"]) == \
        ("11010519491231002X", "张三", "41070000")
    assert {"systemId", "terminalCode", "cardNum", "releaseDate", "validDate", "sex",
            "nation", "birthday"} <= set(request)
    assert wire.decode(wire.encode(request)) == request


def test_cryptograms_match_the_card_keys_for_write_and_read(hsm) -> None:
    keys, soft = service(hsm), SoftwareKeyService(test_keys_allowed=True)
    for key_id in (0x04, 0x0A):
        assert keys.external_auth(key_id, ATR, CITY, CHALLENGE, 0x03) == \
            soft.external_auth(key_id, ATR, CITY, CHALLENGE, 0x03)
    assert [r["businessType"] for r in hsm.requests] == ["026", "028"]
    assert all(r["keyAddr"] == "0094" and r["algoCode"] == "03" for r in hsm.requests)
    data = bytes(range(16))
    assert keys.internal_auth_expected(ATR, CITY, data, 0x03) == internal_auth_expected(
        0x03, TEST_MASTER_KEYS[KeyUsage.INT], ATR, CITY, data)
    assert hsm.requests[-1]["op"] == "InnerAuth"
    keys.close()


def test_concurrent_callers_never_interleave(tmp_path) -> None:
    """One machine for every lane and the window: the lock makes each request/answer one
    sequence; the simulator never works on two requests at once."""
    with HsmSimulator(tmp_path / "hsm", delay=0.002) as sim:
        keys, soft = service(sim), SoftwareKeyService(test_keys_allowed=True)
        wrong: list[str] = []

        def caller(n: int) -> None:
            for i in range(10):
                challenge = bytes([n, i, 0, 0, 0, 0, 0, 1])
                try:
                    got = keys.external_auth(0x04, ATR, CITY, challenge, 0x03)
                except Exception as exc:
                    wrong.append(repr(exc))
                    continue
                if got != soft.external_auth(0x04, ATR, CITY, challenge, 0x03):
                    wrong.append(f"caller {n} call {i}: another caller's cryptogram")

        threads = [threading.Thread(target=caller, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        keys.close()
        assert not wrong
        assert len(sim.requests) == 60 and sim.max_in_flight == 1
        with keys.transaction() as held:  # several calls back to back, nobody in between
            held.external_auth(0x0A, ATR, CITY, CHALLENGE, 0x03)
            held.external_auth(0x04, ATR, CITY, CHALLENGE, 0x03)


def test_refusal_is_a_refusal_and_unreachable_is_unavailable(hsm, tmp_path) -> None:
    keys = service(hsm)
    hsm.refuse = "-9"
    with pytest.raises(KeyServiceError) as refused:
        keys.external_auth(0x04, ATR, CITY, CHALLENGE, 0x03)
    assert not isinstance(refused.value, KeyServiceUnavailable)
    assert fault_of(refused.value).code == "KEY_SERVICE_REFUSED"
    assert "-9" in str(refused.value)
    hsm.refuse = None
    hsm.down = True
    with pytest.raises(KeyServiceUnavailable) as down:
        keys.external_auth(0x04, ATR, CITY, CHALLENGE, 0x03)
    problem = fault_of(down.value)
    assert problem.code == "KEY_SERVICE_UNAVAILABLE" and problem.actions
    hsm.down = False
    assert keys.external_auth(0x04, ATR, CITY, CHALLENGE, 0x03)  # reconnects by itself
    hsm.drop_next = True  # the machine closed an idle connection: one fresh retry
    assert keys.external_auth(0x04, ATR, CITY, CHALLENGE, 0x03)
    with pytest.raises(KeyServiceError, match="business type"):
        keys.external_auth(0x06, ATR, CITY, CHALLENGE, 0x03)
    with pytest.raises(KeyServiceError):
        keys.unblock_mac(ATR, CITY, CHALLENGE, 0x03)
    keys.close()


def test_tls_is_checked_both_ways(hsm, tmp_path) -> None:
    stranger = make_pki(tmp_path / "other")
    with pytest.raises(KeyServiceUnavailable, match="TLS"):  # not the machine's CA
        service(hsm, hsm_ca=str(stranger.ca)).external_auth(0x04, ATR, CITY, CHALLENGE, 3)
    # no client certificate, or one of another CA: the machine hangs up
    for cert, key in (("", ""), (str(stranger.client_cert), str(stranger.client_key))):
        with pytest.raises(KeyServiceUnavailable):
            service(hsm, hsm_cert=cert, hsm_key=key).external_auth(0x04, ATR, CITY,
                                                                   CHALLENGE, 3)
    assert not hsm.requests


def test_config_keys_for_the_hsm(hsm) -> None:
    cfg = Config().with_values(keys=hsm.keys_config())
    assert cfg.keys.service == "hsm" and cfg.keys.hsm_key_address == "0094"
    assert cfg.keys.hsm_timeout == 5.0
    for bad, text in (({"hsm_ca": ""}, "hsm_ca is required"),
                      ({"hsm_address": "nowhere"}, "host:port"),
                      ({"hsm_key": ""}, "go together"),
                      ({"hsm_system_id": ""}, "hsm_system_id"),
                      ({"hsm_key_address": "94"}, "hsm_key_address")):
        with pytest.raises(ConfigError, match=text):
            Config().with_values(keys={**hsm.keys_config(), **bad})
    with pytest.raises(ConfigError, match='"hsm"'):
        Config().with_values(keys={"service": "hsm9"})
    from cardstation.station import build_hsm_key_service

    keys = build_hsm_key_service(cfg)
    assert keys.terminal_code == "410700-SIM" and keys.system_id == "410700006"
    assert keys.external_auth(0x04, ATR, CITY, CHALLENGE, 0x03)
    keys.close()


def test_inner_auth_tells_a_genuine_chip_from_a_foreign_one(hsm) -> None:
    from cardstation.drivers.pcsc.transport import InProcessTransport
    from cardstation.personalization.chip import ChipSession, ChipVerificationFailed

    foreign_keys = {**TEST_MASTER_KEYS, KeyUsage.INT: bytes(16)}
    keys = service(hsm)
    for card, genuine in ((make_card("blank3"), True),
                          (make_card("blank3", master_keys=foreign_keys), False)):
        transport = InProcessTransport(card)
        transport.connect()
        session = ChipSession(transport, keys)
        session.open()
        if genuine:
            assert session.check_genuine()
        else:
            with pytest.raises(ChipVerificationFailed, match="genuine"):
                session.check_genuine()
    assert not ChipSession(InProcessTransport(make_card()),
                           SoftwareKeyService(test_keys_allowed=True)).check_genuine()
    keys.close()
