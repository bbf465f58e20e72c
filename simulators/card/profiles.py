"""Card factory: ``make_card(profile, **overrides)``.

Profiles:

- ``blank3`` (default): blank pre-made 3rd-generation card (SM4, alg flag 03). EF05 pre-filled by
  the vendor with 卡识别码 (region 410700 Xinxiang, 卡流水号, 卡认证码), 卡类别 '3',
  规范版本 "3.00", 初始化机构编号; the rest of EF05 and all of EF06 blank; bank application
  with a PAN; PIN 123456.
- ``blank2``: the same for the 2nd generation (3DES, alg 01, 规范版本 "2.00").
- ``temporary``: a blank3 without the bank application.
- ``personalised``: a blank3 whose EF05/EF06 carry :data:`SAMPLE_HOLDER` (a made-up person).

The 卡流水号 inside the 卡识别码 is NOT the ATR's serial: of three public ATR / card
identification code pairs only one (639900) has them equal, 411600 and 371600 do not
(ssc-chip.md corrections, from leithergit/SSCard_System logs). Stand-in [P]: the bitwise
complement of the chip serial, or the ``card_serial`` override.

Overrides (keyword arguments): ``serial`` (int or 8 hex digits, the chip serial in the ATR),
``card_serial`` (4 bytes, the 卡流水号), ``region``, ``vendor``,
``chip``, ``pan`` (None: no bank application), ``pan_expiry``, ``pan_effective``,
``with_ef0d``, ``pin``, ``holder`` (:class:`Holder` or None), ``card_type``, ``spec_version``,
``init_org`` (24 hex digits), ``master_keys`` (defaults to the TEST-ONLY keys), ``generation``,
``alg``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from cardstation.personalization import cert_assumptions as ca
from cardstation.personalization.keys import scheme
from cardstation.personalization.keys.scheme import CARD_KEY_USAGES, TEST_MASTER_KEYS, KeyUsage
from cardstation.personalization.rules.card_number import card_number_check_char

from .atr import build_atr
from .bank import luhn_check_digit
from .sscard import INITIAL_PIN, CardConfig, KeySlot, SSCard
from .tlv import digits_to_bcd


@dataclass(frozen=True)
class Holder:
    """Personal data written to EF05 (dates, 卡号) and EF06 of a personalised card."""

    id_number: str
    name: str
    sex: str  # GB 2261.1: '1' male, '2' female, '9'
    nation: str  # GB 3304 two digits
    birthplace: str  # 6-digit 行政区划
    birth_date: str  # YYYYMMDD
    card_number: str  # 9 characters with check char
    issue_date: str  # YYYYMMDD
    expiry_date: str  # YYYYMMDD


#: A made-up holder (not a real person): the 17th ID digit is even, so sex '2'.
SAMPLE_HOLDER = Holder(
    id_number="11010519491231002X",
    name="张三",
    sex="2",
    nation="01",
    birthplace="110105",
    birth_date="19491231",
    card_number="A1234567" + card_number_check_char("A1234567"),
    issue_date="20240101",
    expiry_date="20340101",
)

PROFILES: Mapping[str, Mapping[str, Any]] = {
    "blank3": {"generation": 3, "serial": 0x30000001},
    "blank2": {"generation": 2, "serial": 0x20000001},
    "temporary": {"generation": 3, "serial": 0x30000002, "pan": None},
    "personalised": {"generation": 3, "serial": 0x30000003, "holder": SAMPLE_HOLDER},
}

_OVERRIDES = frozenset(
    {
        "serial",
        "card_serial",
        "region",
        "vendor",
        "chip",
        "pan",
        "pan_expiry",
        "pan_effective",
        "with_ef0d",
        "pin",
        "holder",
        "card_type",
        "spec_version",
        "init_org",
        "master_keys",
        "generation",
        "alg",
    }
)


def default_pan(serial: bytes) -> str:
    """19-digit Luhn-valid test PAN derived from the serial (BIN 621999 is a stand-in)."""
    body = "62199910" + str(int.from_bytes(serial, "big")).zfill(10)
    return body + luhn_check_digit(body)


def _serial_bytes(serial: int | str | bytes) -> bytes:
    if isinstance(serial, int):
        return serial.to_bytes(4, "big")
    raw = bytes.fromhex(serial) if isinstance(serial, str) else bytes(serial)
    if len(raw) != 4:
        raise ValueError("serial is 4 bytes")
    return raw


def make_card(profile: str = "blank3", **overrides: Any) -> SSCard:
    """Build a card from a profile; see the module docstring for profiles and overrides."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; known: {sorted(PROFILES)}")
    unknown = set(overrides) - _OVERRIDES
    if unknown:
        raise TypeError(f"unknown overrides: {sorted(unknown)}")
    opts: dict[str, Any] = {**PROFILES[profile], **overrides}
    generation = int(opts.get("generation", 3))
    alg = int(opts.get("alg", scheme.Alg.SM4 if generation >= 3 else scheme.Alg.TDES))
    serial = _serial_bytes(opts.get("serial", 0x30000001))
    card_serial = (_serial_bytes(opts["card_serial"]) if "card_serial" in opts
                   else bytes(b ^ 0xFF for b in serial))
    region = str(opts.get("region", "410700"))
    pan = opts["pan"] if "pan" in opts else default_pan(serial)
    config = CardConfig(
        generation=generation,
        alg=alg,
        vendor=str(opts.get("vendor", "CS")),
        chip=str(opts.get("chip", f"{generation}001")),
        region=region,
        serial=serial.hex().upper(),
        pan=pan,
        pan_expiry=str(opts.get("pan_expiry", "301231")),
        pan_effective=str(opts.get("pan_effective", "201231")),
        with_ef0d=bool(opts.get("with_ef0d", True)),
    )
    masters: Mapping[KeyUsage, bytes] = opts.get("master_keys") or TEST_MASTER_KEYS
    atr = build_atr(config.vendor, bytes.fromhex(config.chip), region, serial)
    keys = {
        usage: KeySlot(scheme.derive_card_key(alg, masters[usage], atr, region))
        for usage in CARD_KEY_USAGES
    }
    card = SSCard(config, keys, pin=str(opts.get("pin", INITIAL_PIN)))
    ef05 = card.tree.ef05
    ef05.set_value(
        0x01,
        scheme.compute_card_identification_code(alg, masters[KeyUsage.AUTH_CODE], region,
                                                card_serial),
    )
    ef05.set_value(0x02, str(opts.get("card_type", "3")).encode("ascii"))
    ef05.set_value(0x03, str(opts.get("spec_version", f"{generation}.00")).encode("ascii"))
    ef05.set_value(0x04, bytes.fromhex(str(opts.get("init_org", f"9156000002{region}{region}01"))))
    if generation >= 3:
        signing = signing_key(serial)
        public = signing.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        card.file(ca.SIGN_PUBLIC_KEY.fid).data[:] = public
    holder = opts.get("holder")
    if holder is not None:
        write_holder(card, holder)
    return card


def signing_key(serial: bytes) -> ec.EllipticCurvePrivateKey:
    """The card's signing key pair, made at manufacture [P]: NIST P-256 standing in for SM2,
    derived from the chip serial so a card's key is reproducible (simulators only)."""
    scalar = int.from_bytes(hashlib.sha256(b"sscard-sign" + serial).digest(), "big")
    return ec.derive_private_key(scalar % (2**255) + 1, ec.SECP256R1())


def write_holder(card: SSCard, holder: Holder) -> None:
    """Fill EF05 dates/卡号 and EF06 the way a personalization would (an padded 00, cn F)."""
    ef05, ef06 = card.tree.ef05, card.tree.ef06
    ef05.set_value(0x05, digits_to_bcd(holder.issue_date))
    ef05.set_value(0x06, digits_to_bcd(holder.expiry_date))
    ef05.set_value(0x07, holder.card_number.encode("ascii"))
    name = holder.name.encode("gbk")
    ef06.set_value(0x08, holder.id_number.encode("ascii"))
    ef06.set_value(0x09, name[:0x1E].ljust(0x1E, b"\x00"))
    ef06.set_value(0x4E, name[0x1E:].ljust(0x14, b"\x00"))
    ef06.set_value(0x0A, holder.sex.encode("ascii"))
    ef06.set_value(0x0B, bytes.fromhex(holder.nation))
    ef06.set_value(0x0C, digits_to_bcd(holder.birthplace, 3))
    ef06.set_value(0x0D, digits_to_bcd(holder.birth_date))
