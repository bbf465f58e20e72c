"""ASSUMPTIONS — the 3rd-generation certificate step's payload formats. PROPOSALS, not facts.

Everything the station and the simulators must agree on about the signing key pair and the
certificates of a 3rd-generation card, in one place, so that a field trace or a vendor manual
replaces this module and nothing else.

What is CONFIRMED (public field code, leithergit/SSCard_System, SSCard_System/DataCenter.cpp,
`WriteCard`, 2025 snapshot), as facts only:
- after the basic data is written (iWriteCardBas_HSM_Step1), the kiosk reads the card's signing
  public key (iReadSignatureKey), asks the CMS for certificates with that public key and the
  algorithm code "03" (GetCA), and writes what comes back to the card (iWriteCA);
- the CMS answer carries five things: QMZS 签名证书 (signing certificate), JMZS 加密证书
  (encryption certificate), JMMY 加密密钥 (the encryption key, issued by the CMS), GLYPIN
  管理员PIN (administrator PIN) and ZKMY 主控密钥 (master control key), and a status of which
  0 and 1 let the kiosk go on (any other stops it);
- the card's other items follow SSCard_System's order: basic data first, then the certificates.

What is PROPOSED here [P] (no public source gives it):
- the card side: the public key is read from a transparent EF, certificates and secrets are
  written with UPDATE BINARY into transparent EFs of the SSSE after external authentication with
  the update key (UKSSSE, 04); FIDs, sizes and access rules are :data:`CARD_FILES`;
- the key and certificate formats: the public key is an uncompressed elliptic-curve point
  (``04 || X || Y``, 65 bytes — the size of an SM2 public key); the simulators use NIST P-256
  as a stand-in for SM2 (the Python `cryptography` package has no SM2) and X.509 DER
  certificates; the station treats a certificate as opaque DER whose subject public key must
  be the card's;
- the secrets EF holds SIMPLE-TLV ``01 JMMY | 02 GLYPIN | 03 ZKMY`` and can never be read
  back; the station writes it before the certificates, so a chip whose certificates are in
  place has its secrets too (read first: a chip carrying the certificates is not rewritten);
- the CMS call: ``POST /applications/<ID number>/certificates`` with JSON
  ``{station, card_id_code, public_key (hex), algorithm}``, answered
  ``{status, sign_cert, enc_cert, enc_key, admin_pin, master_key}`` (hex strings); status 0 =
  issued now, 1 = issued before (the same certificates again); the CMS's refusal is an error
  reply like any other;
- the return (数据回盘) names the signing certificate by its serial number (hex,
  ``sign_cert_serial``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

#: The algorithm code sent with the public key (GetCA's strAlgorithm "03") [C].
ALGORITHM_CODE: Final[str] = "03"
#: CMS statuses that let the card be written (GetCA: nStatus 0 or 1) [C].
STATUS_ISSUED: Final[int] = 0
STATUS_ISSUED_BEFORE: Final[int] = 1
ACCEPTED_STATUSES: Final[frozenset[int]] = frozenset({STATUS_ISSUED, STATUS_ISSUED_BEFORE})

PUBLIC_KEY_LEN: Final[int] = 65  # 04 || X(32) || Y(32) [P]


@dataclass(frozen=True)
class CardFile:
    name: str
    fid: int
    size: int
    readable: bool  # False: write-only (the secrets)


#: The SSSE's transparent EFs of the certificate step [P]; written with UK (04).
SIGN_PUBLIC_KEY = CardFile("sign_public_key", 0xEF10, PUBLIC_KEY_LEN, True)
SIGN_CERT = CardFile("sign_cert", 0xEF11, 0x800, True)
ENC_CERT = CardFile("enc_cert", 0xEF12, 0x800, True)
SECRETS = CardFile("card_secrets", 0xEF13, 0x100, False)
CARD_FILES: Final[tuple[CardFile, ...]] = (SIGN_PUBLIC_KEY, SIGN_CERT, ENC_CERT, SECRETS)

#: Bytes per READ/UPDATE BINARY (short APDUs) [P].
CHUNK: Final[int] = 0xF0

#: Tags of the secrets EF's SIMPLE-TLV [P].
SECRET_TAGS: Final[dict[str, int]] = {"enc_key": 0x01, "admin_pin": 0x02, "master_key": 0x03}


@dataclass(frozen=True)
class CardCertificates:
    """What the CMS issues for one card (GetCA's five outputs and its status)."""

    status: int
    sign_cert: bytes  # QMZS
    enc_cert: bytes  # JMZS
    enc_key: bytes  # JMMY (never journaled, never logged)
    admin_pin: bytes  # GLYPIN (idem)
    master_key: bytes  # ZKMY (idem)

    def __repr__(self) -> str:  # the secrets never reach a log line
        return (f"CardCertificates(status={self.status}, sign_cert={len(self.sign_cert)} B, "
                f"enc_cert={len(self.enc_cert)} B, secrets withheld)")


def request_body(station: str, card_id_code: str, public_key: bytes) -> dict[str, str]:
    """The CMS request [P field names]."""
    return {"station": station, "card_id_code": card_id_code,
            "public_key": public_key.hex().upper(), "algorithm": ALGORITHM_CODE}


def response_body(certs: CardCertificates) -> dict[str, object]:
    """The CMS answer [P field names]."""
    return {"status": certs.status, "sign_cert": certs.sign_cert.hex().upper(),
            "enc_cert": certs.enc_cert.hex().upper(), "enc_key": certs.enc_key.hex().upper(),
            "admin_pin": certs.admin_pin.hex().upper(),
            "master_key": certs.master_key.hex().upper()}


def parse_response(data: dict[str, object]) -> CardCertificates:
    """Inverse of :func:`response_body`; ValueError when a field is missing or not hex."""
    try:
        status = data["status"]
        if not isinstance(status, int) or isinstance(status, bool):
            raise ValueError("status is not a number")
        blobs = {name: bytes.fromhex(str(data[name])) for name in
                 ("sign_cert", "enc_cert", "enc_key", "admin_pin", "master_key")}
    except KeyError as exc:
        raise ValueError(f"the certificate answer has no {exc.args[0]!r}") from None
    return CardCertificates(status=status, **blobs)


def encode_secrets(certs: CardCertificates) -> bytes:
    """The secrets EF's content: SIMPLE-TLV items [P]."""
    out = bytearray()
    for name, tag in SECRET_TAGS.items():
        value: bytes = getattr(certs, name)
        if len(value) > 0xFE:
            raise ValueError(f"{name} is longer than a SIMPLE-TLV item")
        out += bytes([tag, len(value)]) + value
    if len(out) > SECRETS.size:
        raise ValueError("the secrets do not fit their EF")
    return bytes(out)


def der_length(head: bytes) -> int:
    """Total length of a DER object from its first bytes; 0 for a blank (00 or FF) file."""
    if len(head) < 2 or head[0] in (0x00, 0xFF):
        return 0
    if head[0] != 0x30:
        raise ValueError("the file does not hold a DER certificate")
    first = head[1]
    if first < 0x80:
        return 2 + first
    n = first & 0x7F
    if n == 0 or n > 3 or len(head) < 2 + n:
        raise ValueError("unsupported DER length")
    return 2 + n + int.from_bytes(head[2 : 2 + n], "big")
