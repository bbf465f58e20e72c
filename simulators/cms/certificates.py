"""The CMS simulator's certificate authority for 3rd-generation cards (GetCA's counterpart).

Formats are the proposals of `personalization/cert_assumptions.py`: X.509 DER certificates
whose subject key is the card's signing public key (NIST P-256 standing in for SM2), signed by
a TEST-ONLY Ed25519 CA (deterministic signatures, so the same card gets byte-identical
certificates again: status 1). The encryption key pair, administrator PIN and master control
key are derived from the card identification code with a published test secret: worthless
outside tests.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import threading

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from cardstation.personalization import cert_assumptions as ca
from cardstation.personalization.model import Application

_TEST_SECRET = b"cardstation-cms-sim-TEST-ONLY"


def _derive(label: str, card_id_code: str, n: int = 32) -> bytes:
    return hmac.new(_TEST_SECRET, f"{label}|{card_id_code}".encode(), hashlib.sha256).digest()[:n]


def _date(yyyymmdd: str, fallback: dt.datetime) -> dt.datetime:
    try:
        return dt.datetime.strptime(yyyymmdd, "%Y%m%d").replace(tzinfo=dt.UTC)
    except ValueError:
        return fallback


class CertificateAuthority:
    """Issues the five GetCA outputs for a card; remembers which cards it issued for."""

    def __init__(self) -> None:
        self._key = ed25519.Ed25519PrivateKey.from_private_bytes(_derive("ca", "root"))
        self._name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                                x509.NameAttribute(NameOID.ORGANIZATION_NAME,
                                                   "cardstation CMS simulator TEST CA")])
        self._issued: dict[str, bytes] = {}  # card id code -> public key
        self._lock = threading.Lock()

    @property
    def public_key(self) -> ed25519.Ed25519PublicKey:
        return self._key.public_key()

    def issue(self, app: Application, card_id_code: str, public_key: bytes) -> ca.CardCertificates:
        """ValueError when the public key is not a valid point; status 1 when issued before."""
        if len(public_key) != ca.PUBLIC_KEY_LEN:
            raise ValueError(f"the public key is {len(public_key)} bytes, expected "
                             f"{ca.PUBLIC_KEY_LEN}")
        sign_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public_key)
        scalar = int.from_bytes(_derive("enc", card_id_code), "big") % (2**255) + 1
        enc_private = ec.derive_private_key(scalar, ec.SECP256R1())
        with self._lock:
            before = self._issued.get(card_id_code)
            if before is not None and before != public_key:
                raise ValueError("this card already has certificates for another public key")
            self._issued[card_id_code] = public_key
        status = ca.STATUS_ISSUED if before is None else ca.STATUS_ISSUED_BEFORE
        return ca.CardCertificates(
            status=status,
            sign_cert=self._certificate(app, card_id_code, sign_key, "sign"),
            enc_cert=self._certificate(app, card_id_code, enc_private.public_key(), "enc"),
            enc_key=enc_private.private_numbers().private_value.to_bytes(32, "big"),
            admin_pin=_derive("admin_pin", card_id_code, 8),
            master_key=_derive("master_key", card_id_code, 16),
        )

    def _certificate(self, app: Application, card_id_code: str,
                     key: ec.EllipticCurvePublicKey, usage: str) -> bytes:
        start = _date(app.issue_date, dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
        end = _date(app.expiry_date, start + dt.timedelta(days=3650))
        serial = int.from_bytes(_derive(usage + "-serial", card_id_code, 16), "big") >> 1
        subject = x509.Name([
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, card_id_code),
            x509.NameAttribute(NameOID.COMMON_NAME, f"SSC {usage} {card_id_code[:6]}"),
        ])
        usage_ext = x509.KeyUsage(
            digital_signature=usage == "sign", content_commitment=usage == "sign",
            key_encipherment=False, data_encipherment=False, key_agreement=usage == "enc",
            key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False)
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(self._name)
                .public_key(key).serial_number(serial).not_valid_before(start)
                .not_valid_after(end).add_extension(usage_ext, critical=True)
                .sign(self._key, None))
        return cert.public_bytes(serialization.Encoding.DER)
