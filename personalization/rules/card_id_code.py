"""Card identification code (卡的识别码), EF05 tag 01, 16 bytes cn (32 hex digits).

Source: S1 §8.1.1.1 表10: application city code (3 bytes, GB/T 2260 region code as 6 BCD
digits) ‖ SSC application identifier D1 56 00 00 05 (5 bytes) ‖ card serial number (4 bytes)
‖ card authentication code (4 bytes, computed by the issuer over the first three parts; in
practice the first 4 bytes of a PSAM/HSM MAC, S12). Real examples:
`330300D15600000599110145FFFFFFFF` (S3, authenticator not yet written) and
`639900D15600000500BF7C7A48FB4966` (S4). The authenticator's algorithm is the ministry's and
is not checked here; only the structure is.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from cardstation.personalization.findings import Finding
from cardstation.personalization.rules.codes import is_region_code_shape

SSC_AID = "D156000005"
CARD_ID_CODE_HEX_LENGTH = 32
UNWRITTEN_AUTH = "FFFFFFFF"
_HEX = frozenset(string.hexdigits)


@dataclass(frozen=True)
class CardIdCode:
    """The parts of a card identification code, as uppercase hex strings."""

    region: str  # 6 digits
    serial: str  # 8 hex digits
    auth: str  # 8 hex digits
    aid: str = SSC_AID

    @property
    def issue_code(self) -> str:
        """发行码: region ‖ AID ‖ serial (24 hex digits), the data the authenticator covers."""
        return self.region + self.aid + self.serial

    @property
    def has_auth(self) -> bool:
        """False while the authenticator is still the unwritten FFFFFFFF."""
        return self.auth != UNWRITTEN_AUTH

    def to_hex(self) -> str:
        return self.issue_code + self.auth

    def to_bytes(self) -> bytes:
        return bytes.fromhex(self.to_hex())


def parse_card_id_code(value: str | bytes) -> CardIdCode:
    """Parse 32 hex digits (either case) or 16 raw bytes into a CardIdCode.

    Raises ValueError when the structure is wrong; `check_card_id_code` gives findings instead.
    """
    findings = check_card_id_code(value, require_auth=False)
    if findings:
        raise ValueError("; ".join(f.message for f in findings))
    text = _as_hex(value) or ""
    return CardIdCode(region=text[:6], serial=text[16:24], auth=text[24:32], aid=text[6:16])


def check_card_id_code(
    value: str | bytes, field: str = "card_id_code", *, require_auth: bool = True
) -> list[Finding]:
    """Validate a card identification code's structure (S1 表10); return findings, never raise.

    Codes: `length`, `characters` (not hex), `region` (city code not 6 digits starting 1-8),
    `aid` (bytes 4-8 are not D156000005), `auth_unwritten` (authenticator still FFFFFFFF, only
    when `require_auth`, i.e. for a card that should be finished).
    """
    text = _as_hex(value)
    if text is None:
        return [Finding(field, "characters", f"{field} must be hex text or bytes")]
    if len(text) != CARD_ID_CODE_HEX_LENGTH:
        return [
            Finding(
                field,
                "length",
                f"{field} has {len(text)} hex digits, expected 32 (16 bytes)",
            )
        ]
    if not set(text) <= _HEX:
        return [Finding(field, "characters", f"{field} {text!r} is not hexadecimal")]
    findings: list[Finding] = []
    if not is_region_code_shape(text[:6]):
        findings.append(
            Finding(
                field,
                "region",
                f"{field}: city code {text[:6]!r} is not a 6-digit GB/T 2260 code",
            )
        )
    if text[6:16] != SSC_AID:
        findings.append(
            Finding(
                field,
                "aid",
                f"{field}: application identifier {text[6:16]!r} should be {SSC_AID}",
            )
        )
    if require_auth and text[24:] == UNWRITTEN_AUTH:
        findings.append(
            Finding(field, "auth_unwritten", f"{field}: authentication code is not written")
        )
    return findings


def _as_hex(value: str | bytes) -> str | None:
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex().upper()
    if isinstance(value, str):
        return value.upper()
    return None
