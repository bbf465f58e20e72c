"""A 3rd-generation card made with the HSM key service through the real pcscd stack, its
certificates from the CMS written and returned (issue 14 items 6 and 7)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography import x509

from cardstation.personalization import cert_assumptions as ca
from cardstation.personalization.journal import State
from cardstation.simulators.cms.applicants import EXAMPLE_ID_NUMBER
from cardstation.station import Station, build_station
from tests.support.world import settled

pytestmark = pytest.mark.pcscd


@pytest.fixture
def station(world) -> Iterator[Station]:
    s = build_station(world.config(keys=world.start_hsm()))
    yield s
    s.close()


def test_a_third_generation_card_with_the_hsm_key_service(world, station) -> None:
    (chip,) = world.load_blank()
    issuance = settled(station, station.pipeline.issue(EXAMPLE_ID_NUMBER))
    assert issuance.state is State.DONE, issuance.reason
    # the machine computed every cryptogram: reading (028) and writing (026), for this card
    card_id_code = issuance.data["chip"]["card_id_code"]
    business = [r.get("businessType") for r in world.hsm.requests]
    assert "028" in business and "026" in business
    assert [r["op"] for r in world.hsm.requests].count("InnerAuth") == 1  # genuine at verify
    assert all(r["identifyNum"] == card_id_code and r["keyAddr"] == "0094"
               and r["algoCode"] == "03" and r["systemId"] == "410700006"
               for r in world.hsm.requests)
    assert any(r["cardId"] == EXAMPLE_ID_NUMBER for r in world.hsm.requests)
    # the certificates the CMS issued for the card's key are on the chip, and the return
    # names the signing certificate
    sign = bytes(chip.card.file(ca.SIGN_CERT.fid).data)
    der = sign[: ca.der_length(sign[:4])]
    assert der.hex().upper() == issuance.data["certificates"]["sign_cert"]
    serial = f"{x509.load_der_x509_certificate(der).serial_number:X}"
    assert issuance.data["chip"]["sign_cert_serial"] == serial
    (ret,) = [r for r in world.cms.ledger(photos=False)["returns"]
              if r["record"]["id_number"] == EXAMPLE_ID_NUMBER]
    assert ret["record"]["sign_cert_serial"] == serial
    assert [c["status"] for c in world.cms.certificates_issued] == [0]
    assert "enc_key" not in issuance.data.get("certificates", {})  # secrets never journaled


def test_hsm_down_then_cms_refusing_certificates_resume_without_rewriting(world,
                                                                         station) -> None:
    (chip,) = world.load_blank()
    world.hsm.down = True
    issuance = station.pipeline.issue(EXAMPLE_ID_NUMBER)
    assert issuance.state is State.FAILED
    assert issuance.data["reason_code"] == "KEY_SERVICE_UNAVAILABLE"
    assert "RESUME" in issuance.data["actions"] and not chip.writes
    world.hsm.down = False
    world.cms.inject("certificate_status", status=2)
    issuance = station.pipeline.resume(issuance.id)
    assert issuance.state is State.FAILED, issuance.state
    assert issuance.data["reason_code"] == "CERTIFICATE_REFUSED"
    basic = dict(chip.writes)
    assert basic and chip.binary_writes == 0  # basic data written, no certificate yet
    world.cms.clear_faults()
    issuance = settled(station, station.pipeline.resume(issuance.id))
    assert issuance.state is State.DONE, issuance.reason
    assert dict(chip.writes) == basic  # the basic data was not written again
    written = chip.binary_writes
    assert written > 0
    assert [c["status"] for c in world.cms.certificates_issued] == [0, 1]


def test_the_station_picture_shows_the_encryption_machine(world) -> None:
    """Admission before anything irreversible: an unreachable machine is a problem of the
    station picture, and a job is refused before the CMS claim."""
    from cardstation.personalization.pipeline import IssuanceError
    from cardstation.server.runtime import StationRuntime

    config = world.config(keys=world.start_hsm())
    runtime = StationRuntime(lambda **kw: build_station(config, **kw), monitor_interval=60)
    try:
        hsm = [d for d in runtime.refresh().devices if d.name == "hsm"]
        assert [d.status for d in hsm] == ["READY"]
        world.hsm.down = True
        snap = runtime.refresh()
        assert ("hsm", "KEY_SERVICE_UNAVAILABLE") in [(n, f.code) for n, f in snap.problems]
        with pytest.raises(IssuanceError) as refused:
            runtime.pipeline.create(EXAMPLE_ID_NUMBER, admission=runtime.admission)
        assert refused.value.reason == "KEY_SERVICE_UNAVAILABLE"
        # refused before the CMS claim
        assert world.cms.ledger_store.get_application(EXAMPLE_ID_NUMBER)["status"] == "ready"
        world.hsm.down = False
        assert not [p for p in runtime.refresh().problems if p[0] == "hsm"]
        assert not world.hsm.requests  # a probe is a TLS handshake, never a request
    finally:
        runtime.station.close()
