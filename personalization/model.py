"""The domain's value types: an application from the CMS and the return record sent back.

Both serialise to plain JSON dicts (`to_dict`/`from_dict`) so the journal, the CMS wire format
and the gRPC layer share one shape. Photos travel as base64 in JSON.
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class Application:
    """One card application as the CMS holds it (holder data + card data)."""

    id_number: str
    name: str
    sex: str  # GB 2261.1: 1 male, 2 female, 9 unspecified
    nation: str  # GB 3304 two-digit code
    birth_date: str  # YYYYMMDD
    birthplace: str  # 6-digit region code
    card_number: str  # 9 chars with check char
    bank_name: str
    batch: str  # 批次号 PCH
    issue_date: str  # YYYYMMDD
    expiry_date: str  # YYYYMMDD
    photo: bytes = field(repr=False, default=b"")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["photo"] = base64.b64encode(self.photo).decode("ascii")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Application:
        names = {f.name for f in fields(cls)}
        missing = sorted(names - set(data) - {"photo"})
        if missing:
            raise ValueError(f"application is missing fields: {', '.join(missing)}")
        values = {k: data[k] for k in names if k in data}
        for key, value in values.items():
            if key != "photo" and not isinstance(value, str):
                raise ValueError(f"application field {key!r} must be a string")
        photo = values.pop("photo", "") or ""
        try:
            raw = base64.b64decode(photo, validate=True) if isinstance(photo, str) else photo
        except ValueError:
            raise ValueError("application photo is not valid base64") from None
        return cls(photo=raw, **values)


@dataclass(frozen=True)
class ReturnRecord:
    """数据回盘: what the chip says after a successful write (Henan returnCardData fields)."""

    card_number: str  # CardNum
    id_number: str  # CardID
    name: str  # Name
    issue_date: str  # ReleaseDate
    expiry_date: str  # ValidDate
    card_id_code: str  # IdentifyNum (卡识别码, 32 hex)
    atr: str  # CardATR (hex)
    bank_account: str  # BankNum (PAN)
    batch: str  # PCH
    #: 3rd-generation cards: the serial number (hex) of the signing certificate written to the
    #: chip (cert_assumptions.py, a proposal); "" for cards without certificates
    sign_cert_serial: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReturnRecord:
        names = [f.name for f in fields(cls)]
        optional = {"sign_cert_serial"}
        missing = [n for n in names if n not in data and n not in optional]
        if missing:
            raise ValueError(f"return record is missing fields: {', '.join(missing)}")
        return cls(**{n: str(data[n]) for n in names if n in data})
