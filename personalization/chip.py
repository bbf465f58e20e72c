"""One card under the encoder: identify it, read it, write what differs, verify, read the PAN.

The session never holds a key: each external authentication asks the key service for the
cryptogram over a fresh card challenge. Reads come first, so a chip that already carries
another holder's data is refused and one that already carries this holder's data is not
rewritten (only items whose bytes differ are written).
"""

from __future__ import annotations

import functools
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from cryptography import x509

from cardstation.drivers.pcsc.errors import RecordNotFound, SecurityNotSatisfied
from cardstation.drivers.pcsc.ssc import ITEMS, SscCard, decode_value
from cardstation.drivers.pcsc.transport import ApduTransport

from . import cert_assumptions as ca
from .keys.service import KeyService
from .profiles import ChipProfile, profile_for

T = TypeVar("T")


class ChipBelongsToAnotherHolder(RuntimeError):
    """The chip already carries a different holder's ID number."""


class ChipVerificationFailed(RuntimeError):
    """Read-back differs from what was written."""


class ChipCertificateDiffers(RuntimeError):
    """The chip already carries certificates other than the ones issued for it."""


class CertificateKeyMismatch(RuntimeError):
    """A signing certificate whose subject key is not the card's signing public key."""


def _der_items(data: bytes) -> list[tuple[int, bytes]]:
    """The (tag, value) items of a DER constructed value's content (single-byte tags)."""
    items, i = [], 0
    while i < len(data):
        tag, first = data[i], data[i + 1]
        i += 2
        if first & 0x80:
            n = first & 0x7F
            length = int.from_bytes(data[i : i + n], "big")
            i += n
        else:
            length = first
        if i + length > len(data):
            raise ValueError("truncated DER")
        items.append((tag, data[i : i + length]))
        i += length
    return items


def certificate_public_key(der: bytes) -> bytes:
    """The subject public key of a DER certificate: the SubjectPublicKeyInfo bit string
    (an uncompressed point for SM2 and the P-256 stand-in). Read from the DER itself, so a
    real SM2 certificate (a curve the `cryptography` package does not know) works too;
    ValueError when it is no certificate."""
    try:
        tbs = x509.load_der_x509_certificate(der).tbs_certificate_bytes
        fields = _der_items(_der_items(tbs)[0][1])
        if fields and fields[0][0] == 0xA0:  # [0] version
            fields = fields[1:]
        spki = fields[5]  # serial, signature, issuer, validity, subject, SPKI
        bits = next(v for t, v in _der_items(spki[1]) if t == 0x03)
    except (IndexError, StopIteration, ValueError) as exc:
        raise ValueError(f"not a certificate with a public key ({exc})") from None
    if not bits or bits[0] != 0:
        raise ValueError("the certificate's public key is not whole bytes")
    return bits[1:]


def certificate_serial(der: bytes) -> str:
    return f"{x509.load_der_x509_certificate(der).serial_number:X}"


@dataclass(frozen=True)
class ChipFacts:
    atr: str  # hex
    card_id_code: str  # 32 hex
    spec_version: str
    algorithm: int
    profile: str

    @property
    def city6(self) -> str:
        return self.card_id_code[:6]


class ChipSession:
    def __init__(self, transport: ApduTransport, keys: KeyService) -> None:
        self.card = SscCard(transport)
        self.keys = keys
        self.facts: ChipFacts | None = None
        self.profile: ChipProfile | None = None
        #: what the station knows of the holder (decoded items), for key services that ask
        #: for it (the HSM's card data); empty until a write
        self.holder: dict[str, str] = {}
        #: whether write() found the chip without an ID number (nothing of ours on it yet)
        self.blank = False

    def open(self) -> ChipFacts:
        algorithm = self.card.select_ssse()
        self.profile = profile_for(algorithm)
        self.facts = ChipFacts(
            atr=self.card.t.atr.hex().upper(),
            card_id_code=self.card.read_item("card_id_code"),
            spec_version=self.card.read_item("spec_version"),
            algorithm=algorithm,
            profile=self.profile.name,
        )
        return self.facts

    def _secured(self, key_id: int | None, action: Callable[[], T]) -> T:
        """`action` in the SSSE with `key_id` presented (None: no key needed). The card keeps
        a presented key until the SSSE is selected again (drivers/pcsc/security_state.py), so
        what this connection already did is not done again. A card that refuses anyway
        (6982) gets a fresh select and the key, and the action once more."""
        state = self.card.security
        assumed = state.in_ssse  # outside it, the select below clears every key
        if not state.in_ssse:
            self.card.select_ssse()
        if key_id is not None and key_id not in state.keys:
            self.authenticate(key_id)
        try:
            return action()
        except SecurityNotSatisfied:
            if not assumed:
                raise
        state.forget()
        self.card.select_ssse()
        if key_id is not None:
            self.authenticate(key_id)
        return action()

    def authenticate(self, key_id: int) -> None:
        """External authentication with `key_id`; the key service computes the cryptogram."""
        assert self.facts is not None, "open() first"
        challenge = self.card.get_challenge(8)
        context = {"card_id_code": self.facts.card_id_code, **self.holder}
        data = self.keys.external_auth(key_id, self.card.t.atr, self.facts.city6, challenge,
                                       self.facts.algorithm, context=context)
        self.card.external_authenticate(key_id, data)

    def read_items(self, items: tuple[str, ...] | list[str]) -> dict[str, bytes]:
        """Raw bytes of each item (b"" when the record does not exist yet), with the read key
        presented if the profile needs one."""
        assert self.profile is not None, "open() first"

        def read() -> dict[str, bytes]:
            values: dict[str, bytes] = {}
            for item in items:
                try:
                    values[item] = self.card.read_item_raw(item)
                except RecordNotFound:
                    values[item] = b""
            return values

        return self._secured(self.profile.read_key, read)

    def holder_id_number(self) -> str:
        return decode_value(ITEMS["id_number"], self.read_items(["id_number"])["id_number"])

    def write(self, values: dict[str, bytes], id_number: str) -> list[str]:
        """Write the items whose chip bytes differ from `values`; return their names.

        Refuses (before writing anything) a chip holding another holder's ID number.

        The ID number is read first and written first, and a record update is atomic: a chip
        without one carries nothing a write of ours put there (a new card, or a write cut off
        before it began), so every item is written without reading the others. A chip with
        the holder's ID number (a job resumed after a crash) has every item read and only
        those that differ written, so nothing is written twice."""
        self.holder = {item: decode_value(ITEMS[item], value) for item, value in values.items()}
        current = self.read_items(["id_number"])
        on_chip = decode_value(ITEMS["id_number"], current["id_number"])
        if on_chip and on_chip != id_number:
            raise ChipBelongsToAnotherHolder(
                "this card's chip already belongs to another holder: put it aside, do not "
                "issue it, and feed a new blank card"
            )
        self.blank = not on_chip
        if on_chip:
            current.update(self.read_items([i for i in values if i != "id_number"]))
        todo = sorted((item for item, value in values.items() if current.get(item) != value),
                      key=lambda item: item != "id_number")  # the ID number first
        assert self.profile is not None
        for item in todo:  # one by one: a retry after a refusal rewrites nothing written
            self._secured(self.profile.write_key,
                          functools.partial(self.card.write_item, item, values[item]))
        return todo

    def verify(self, values: dict[str, bytes]) -> dict[str, bytes]:
        """Read every item back and compare; return what the chip holds."""
        back = self.read_items(list(values))
        wrong = [item for item, value in values.items() if back.get(item) != value]
        if wrong:
            raise ChipVerificationFailed(
                f"read-back differs from what was written for: {', '.join(wrong)}"
            )
        return back

    def check_genuine(self) -> bool:
        """INTERNAL AUTHENTICATE over fresh random data, checked against the key service's
        InnerAuth, when the key service offers it (the encryption machine does); False when it
        does not. Raises ChipVerificationFailed for a chip whose answer is wrong."""
        expected_of = getattr(self.keys, "internal_auth_expected", None)
        if expected_of is None:
            return False
        assert self.facts is not None, "open() first"
        data = secrets.token_bytes(16)
        answer = self._secured(None, lambda: self.card.internal_authenticate(data))
        expected = expected_of(self.card.t.atr, self.facts.city6, data, self.facts.algorithm,
                               context={"card_id_code": self.facts.card_id_code, **self.holder})
        if not hmac.compare_digest(answer, expected):
            raise ChipVerificationFailed("the chip's internal authentication does not match "
                                         "the key service: not a genuine card of this issuer")
        return True

    def read_pan(self) -> str:
        return self.card.read_pan()

    # -- 3rd generation: signing key pair and certificates (cert_assumptions.py) -----------
    def _read_file(self, f: ca.CardFile, length: int | None = None) -> bytes:
        """Bytes of a transparent SSSE EF: `length` of them, or the DER object it holds."""
        self.card.select_ef(f.fid)
        if length is None:
            head = self.card.t.command(bytes([0x00, 0xB0, 0x00, 0x00, 4]), f"read {f.name}")
            length = ca.der_length(head)
            if length > f.size:
                raise ValueError(f"{f.name}: the chip says {length} bytes in a {f.size}-byte file")
        out = bytearray()
        while len(out) < length:
            n = min(ca.CHUNK, length - len(out))
            offset = len(out)
            out += self.card.t.command(bytes([0x00, 0xB0, offset >> 8, offset & 0xFF, n]),
                                       f"read {f.name}")
        return bytes(out)

    def _write_file(self, f: ca.CardFile, data: bytes) -> None:
        self.card.select_ef(f.fid)
        for offset in range(0, len(data), ca.CHUNK):
            chunk = data[offset : offset + ca.CHUNK]
            self.card.t.command(bytes([0x00, 0xD6, offset >> 8, offset & 0xFF, len(chunk)])
                                + chunk, f"write {f.name}")

    def read_sign_public_key(self) -> bytes:
        """The card's signing public key (iReadSignatureKey's counterpart)."""
        return self._secured(None, lambda: self._read_file(ca.SIGN_PUBLIC_KEY,
                                                           ca.PUBLIC_KEY_LEN))

    def read_certificates(self) -> dict[str, bytes]:
        """The certificates on the chip (b"" where none is written yet)."""
        return self._secured(None, lambda: {f.name: self._read_file(f)
                                            for f in (ca.SIGN_CERT, ca.ENC_CERT)})

    def write_certificates(self, certs: ca.CardCertificates, public_key: bytes) -> list[str]:
        """Write what the CMS issued unless the chip already carries it; return what was written.

        Read first (unless write() found the chip blank): a chip carrying both certificates
        is not touched; one carrying other certificates is refused before anything is
        written. The secrets (write-only) go first and the signing certificate last, so a chip
        with its signing certificate is complete.
        """
        if certificate_public_key(certs.sign_cert) != public_key:
            raise CertificateKeyMismatch(
                "the signing certificate the CMS issued is not for this card's public key")
        wanted = {ca.SIGN_CERT.name: certs.sign_cert, ca.ENC_CERT.name: certs.enc_cert}
        # written after the basic data: a chip that had no ID number before this session's
        # write (self.blank) has no certificate a write of ours put there
        current = ({name: b"" for name in wanted} if self.blank else
                   self.read_certificates())
        if current == wanted:
            return []
        other = [name for name, value in current.items() if value and value != wanted[name]]
        if other:
            raise ChipCertificateDiffers(
                f"the chip already carries another {', '.join(other)}: put the card aside, do "
                "not issue it")
        assert self.profile is not None
        key = self.profile.write_key
        self._secured(key, lambda: self._write_file(ca.SECRETS, ca.encode_secrets(certs)))
        written = [ca.SECRETS.name]
        for f in (ca.ENC_CERT, ca.SIGN_CERT):
            if current[f.name] != wanted[f.name]:
                self._secured(key, functools.partial(self._write_file, f, wanted[f.name]))
                written.append(f.name)
        return written

    def verify_certificates(self, expected: dict[str, bytes]) -> str:
        """Read the certificates back, compare, check the signing one is for this card's key;
        return the signing certificate's serial number (hex) for the return."""
        back = self.read_certificates()
        wrong = [name for name, value in expected.items() if back.get(name) != value]
        if wrong:
            raise ChipVerificationFailed(
                f"read-back differs from what was written for: {', '.join(wrong)}")
        sign = back[ca.SIGN_CERT.name]
        if certificate_public_key(sign) != self.read_sign_public_key():
            raise ChipVerificationFailed("the signing certificate on the chip is not for the "
                                         "chip's signing key")
        return certificate_serial(sign)
