"""The 3rd-generation certificate step (issue 14 item 6): the card's signing public key, the
CMS's certificates (GetCA), read-first writing, verification. No pcscd needed.

Facts (leithergit/SSCard_System, SSCard_System/DataCenter.cpp `WriteCard`, 2025 snapshot):
basic data first, then iReadSignatureKey, GetCA(public key, algorithm "03") answering QMZS,
JMZS, JMMY, GLYPIN and ZKMY with status 0 or 1, then iWriteCA. Formats: proposals in
personalization/cert_assumptions.py.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from cryptography import x509
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cardstation.drivers.pcsc.errors import SecurityNotSatisfied
from cardstation.drivers.pcsc.transport import InProcessTransport
from cardstation.personalization import cert_assumptions as ca
from cardstation.personalization.chip import (
    CertificateKeyMismatch,
    ChipCertificateDiffers,
    ChipSession,
    ChipVerificationFailed,
    certificate_public_key,
)
from cardstation.personalization.cms import CertificateRefused, CmsClient
from cardstation.personalization.faults import fault_of
from cardstation.personalization.keys.service import SoftwareKeyService
from cardstation.personalization.model import Application, ReturnRecord
from cardstation.personalization.profiles import SECOND_GENERATION, THIRD_GENERATION
from cardstation.simulators.card import make_card
from cardstation.simulators.cms.applicants import EXAMPLE_ID_NUMBER
from cardstation.simulators.cms.server import CmsSimulator


@pytest.fixture
def cms() -> Iterator[tuple[CmsSimulator, CmsClient]]:
    sim = CmsSimulator(seed=1)
    sim.start()
    client = CmsClient(sim.base_url, "410700-T01", connect_timeout=1.0, read_timeout=2.0)
    client.claim(EXAMPLE_ID_NUMBER)
    yield sim, client
    sim.stop()


def session_for(card) -> ChipSession:
    transport = InProcessTransport(card)
    transport.connect()
    session = ChipSession(transport, SoftwareKeyService(test_keys_allowed=True))
    session.open()
    return session


def test_the_facts_of_the_public_kiosk() -> None:
    """GetCA's algorithm code and accepted statuses, and its five outputs."""
    assert ca.ALGORITHM_CODE == "03"
    assert ca.ACCEPTED_STATUSES == {0, 1}
    assert [f for f in ca.CardCertificates.__dataclass_fields__] == [
        "status", "sign_cert", "enc_cert", "enc_key", "admin_pin", "master_key"]
    assert THIRD_GENERATION.certificates and not SECOND_GENERATION.certificates


def test_cms_issues_the_same_certificates_again_with_status_1(cms) -> None:
    sim, client = cms
    card = make_card("blank3")
    session = session_for(card)
    public_key = session.read_sign_public_key()
    assert len(public_key) == 65 and public_key[0] == 0x04
    first = client.issue_certificates(EXAMPLE_ID_NUMBER, session.facts.card_id_code, public_key)
    again = client.issue_certificates(EXAMPLE_ID_NUMBER, session.facts.card_id_code, public_key)
    assert (first.status, again.status) == (0, 1)
    assert (first.sign_cert, first.enc_cert, first.enc_key) == \
        (again.sign_cert, again.enc_cert, again.enc_key)
    assert certificate_public_key(first.sign_cert) == public_key
    cert = x509.load_der_x509_certificate(first.sign_cert)
    assert cert.not_valid_before_utc.strftime("%Y%m%d") == \
        Application.from_dict(sim.ledger_store.get_application(EXAMPLE_ID_NUMBER)).issue_date
    assert "enc_key" not in repr(first) or "withheld" in repr(first)
    assert first.enc_key.hex() not in repr(first)


def test_refusals_are_certificate_refused(cms) -> None:
    sim, client = cms
    session = session_for(make_card("blank3"))
    key = session.read_sign_public_key()
    sim.inject("certificate_status", status=2)
    with pytest.raises(CertificateRefused) as refused:
        client.issue_certificates(EXAMPLE_ID_NUMBER, session.facts.card_id_code, key)
    assert fault_of(refused.value).code == "CERTIFICATE_REFUSED"
    sim.clear_faults()
    with pytest.raises(CertificateRefused):  # not a point on the curve
        client.issue_certificates(EXAMPLE_ID_NUMBER, session.facts.card_id_code,
                                  b"\x04" + bytes(64))
    other = CmsClient(sim.base_url, "410700-T02", connect_timeout=1.0, read_timeout=2.0)
    with pytest.raises(CertificateRefused):  # the application is claimed by another station
        other.issue_certificates(EXAMPLE_ID_NUMBER, session.facts.card_id_code, key)


def test_read_first_write_what_differs_never_rewrite(cms) -> None:
    _sim, client = cms
    card = make_card("blank3")
    session = session_for(card)
    key = session.read_sign_public_key()
    certs = client.issue_certificates(EXAMPLE_ID_NUMBER, session.facts.card_id_code, key)
    assert session.read_certificates() == {"sign_cert": b"", "enc_cert": b""}
    assert session.write_certificates(certs, key) == ["card_secrets", "enc_cert", "sign_cert"]
    assert session.write_certificates(certs, key) == []  # the chip has them: nothing written
    assert session.verify_certificates({"sign_cert": certs.sign_cert,
                                        "enc_cert": certs.enc_cert}) == \
        f"{x509.load_der_x509_certificate(certs.sign_cert).serial_number:X}"
    assert card.file(ca.SIGN_CERT.fid).data[: len(certs.sign_cert)] == certs.sign_cert
    assert card.file(ca.SECRETS.fid).data[:2] == bytes([0x01, len(certs.enc_key)])
    # the secrets are write-only; the public key can never be written
    session.card.select_ssse()
    session.card.select_ef(ca.SECRETS.fid)
    with pytest.raises(SecurityNotSatisfied):
        session.card.t.command(bytes.fromhex("00B0000004"))
    with pytest.raises(ChipVerificationFailed):
        session.verify_certificates({"sign_cert": certs.enc_cert, "enc_cert": certs.enc_cert})


def test_other_certificates_on_the_chip_or_for_another_key_are_refused(cms) -> None:
    _sim, client = cms
    card = make_card("blank3")
    session = session_for(card)
    key = session.read_sign_public_key()
    certs = client.issue_certificates(EXAMPLE_ID_NUMBER, session.facts.card_id_code, key)
    other_card = make_card("blank3", serial=0x30000099)
    other = session_for(other_card)
    other_key = other.read_sign_public_key()
    with pytest.raises(CertificateKeyMismatch):
        other.write_certificates(certs, other_key)
    # a chip already carrying someone else's certificates is refused before any write
    card.file(ca.SIGN_CERT.fid).data[: len(certs.enc_cert)] = certs.enc_cert
    with pytest.raises(ChipCertificateDiffers):
        session.write_certificates(certs, key)
    assert not any(card.file(ca.SECRETS.fid).data)


def test_formats_der_length_secrets_and_the_return_field() -> None:
    assert ca.der_length(bytes(4)) == 0 and ca.der_length(b"\xff" * 4) == 0
    assert ca.der_length(bytes.fromhex("30820123")) == 0x123 + 4
    assert ca.der_length(bytes.fromhex("3010")) == 0x12
    with pytest.raises(ValueError):
        ca.der_length(bytes.fromhex("04820123"))
    certs = ca.CardCertificates(0, b"", b"", b"\x01" * 32, b"\x02" * 8, b"\x03" * 16)
    assert ca.encode_secrets(certs) == (b"\x01\x20" + b"\x01" * 32 + b"\x02\x08" + b"\x02" * 8
                                        + b"\x03\x10" + b"\x03" * 16)
    assert ca.parse_response(ca.response_body(certs)) == certs
    old = {k: "x" for k in ("card_number", "id_number", "name", "issue_date", "expiry_date",
                            "card_id_code", "atr", "bank_account", "batch")}
    assert ReturnRecord.from_dict(old).sign_cert_serial == ""  # records journaled before


def _der(body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([0x30, n]) + body
    size = (n.bit_length() + 7) // 8
    return bytes([0x30, 0x80 | size]) + n.to_bytes(size, "big") + body


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_property_certificate_files_round_trip_up_to_their_size(data) -> None:
    """Every length a certificate file can hold, up to the maximal one, including bodies
    ending in F nibbles and FF bytes, round-trips station -> card -> station."""
    card = make_card("blank3")
    session = session_for(card)
    for f in (ca.SIGN_CERT, ca.ENC_CERT):
        room = f.size - 4
        n = data.draw(st.one_of(st.just(room), st.integers(1, room)), label=f.name)
        seed = data.draw(st.integers(0, 2**32), label="seed")
        body = random.Random(seed).randbytes(n)
        if data.draw(st.booleans(), label="ends in FF"):
            body = body[:-1] + b"\xff"
        blob = _der(body)
        assert len(blob) <= f.size
        session.card.select_ssse()
        session.authenticate(THIRD_GENERATION.write_key)
        session._write_file(f, blob)
        session.card.select_ssse()
        assert session._read_file(f) == blob


def test_a_real_sm2_certificates_key_is_read_from_the_der(cms) -> None:
    """Real cards' certificates name the SM2 curve (OID 1.2.156.10197.1.301, GB/T 35276),
    which `cryptography` cannot load as a key: the station reads the subject key from the
    DER. The stand-in certificate with its curve OID swapped for SM2's shows it."""
    _sim, client = cms
    session = session_for(make_card("blank3"))
    key = session.read_sign_public_key()
    certs = client.issue_certificates(EXAMPLE_ID_NUMBER, session.facts.card_id_code, key)
    p256 = bytes.fromhex("06082A8648CE3D030107")
    sm2 = bytes.fromhex("06082A811CCF5501822D")
    assert certs.sign_cert.count(p256) == 1
    swapped = certs.sign_cert.replace(p256, sm2)
    with pytest.raises(Exception):  # noqa: B017 - whatever cryptography raises for the curve
        x509.load_der_x509_certificate(swapped).public_key()
    assert certificate_public_key(swapped) == key
    with pytest.raises(ValueError):
        certificate_public_key(b"\x30\x03\x02\x01\x00")
