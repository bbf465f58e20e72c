"""The financial (PBOC/UnionPay debit) application: PSE, ADF, GPO answer, records with the PAN.

Confirmed [C ssc-chip.md §10]: PSE name, debit AID, GPO command, response format 2 with AFL,
records read by ``00B2 <rec> <(SFI<<3)|4> 00``, PAN in tag 5A (odd length -> trailing F),
readers that skip GPO and read SFI 2 record 1 directly. The record contents beyond 5A/5F24/57
are a plausible minimum [P].
"""

from __future__ import annotations

from .files import DF, FREE, NEVER, RecordEF
from .layout import DEBIT_AID, PSE_NAME
from .tlv import ber_tlv, digits_to_bcd

APP_LABEL = b"PBOC DEBIT"
#: PDOL: 9F7A (1) 9F02 (6) 5F2A (2) = 9 bytes, matching the S3 GPO sample ``83 09 ...`` [P].
PDOL = bytes.fromhex("9F7A019F02065F2A02")
#: AFL: SFI 1 rec 1-1, SFI 2 rec 1-3 (1 for ODA) [C format, values P].
AIP = bytes.fromhex("7C00")
AFL = bytes.fromhex("0801010010010301")


def luhn_check_digit(body: str) -> str:
    """Luhn check digit for a PAN body."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def gpo_response() -> bytes:
    """Format 2: ``77 [82 AIP] [94 AFL]`` [C §10]."""
    return ber_tlv(0x77, ber_tlv(0x82, AIP) + ber_tlv(0x94, AFL))


def build_bank(pan: str, expiry: str, effective: str) -> tuple[DF, DF]:
    """PSE DDF and debit ADF for ``pan`` (digits), ``expiry``/``effective`` as YYMMDD."""
    pan_bcd = digits_to_bcd(pan)
    track2_hex = pan + "D" + expiry[:4] + "201" + "0" * 10
    track2 = bytes.fromhex(track2_hex + "F" * (len(track2_hex) % 2))
    pse_entry = ber_tlv(
        0x61, ber_tlv(0x4F, DEBIT_AID) + ber_tlv(0x50, APP_LABEL) + ber_tlv(0x87, b"\x01")
    )
    pse = DF("PSE", None, PSE_NAME, proprietary=ber_tlv(0x88, b"\x01"))
    pse.add(RecordEF("SFI01", None, 0x01, FREE, NEVER, records=[ber_tlv(0x70, pse_entry)]))

    adf = DF(
        "ADF_DEBIT",
        None,
        DEBIT_AID,
        proprietary=ber_tlv(0x50, APP_LABEL) + ber_tlv(0x87, b"\x01") + ber_tlv(0x9F38, PDOL),
    )
    sfi1 = [ber_tlv(0x70, ber_tlv(0x57, track2) + ber_tlv(0x9F1F, b"0" * 8))]
    sfi2 = [
        ber_tlv(
            0x70,
            ber_tlv(0x5A, pan_bcd)
            + ber_tlv(0x5F24, bytes.fromhex(expiry))
            + ber_tlv(0x5F25, bytes.fromhex(effective))
            + ber_tlv(0x5F34, b"\x01")
            + ber_tlv(0x9F62, b"\x00"),
        ),
        ber_tlv(0x70, ber_tlv(0x8C, bytes.fromhex("9F02069F03069F1A0295055F2A029A039C019F3704"))),
        ber_tlv(0x70, ber_tlv(0x9F4A, b"\x82") + ber_tlv(0x5F28, b"\x01\x56")),
    ]
    adf.add(
        RecordEF("SFI01", None, 0x01, FREE, NEVER, records=sfi1),
        RecordEF("SFI02", None, 0x02, FREE, NEVER, records=sfi2),
    )
    return pse, adf
