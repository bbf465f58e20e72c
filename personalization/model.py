"""The domain's value types: an application from the CMS and the return record sent back.

Both serialise to plain JSON dicts (`to_dict`/`from_dict`) so the journal, the CMS wire format
and the gRPC layer share one shape. Photos travel as base64 in JSON.
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass, field, fields
from typing import Any


def _with_photo_text(data: dict[str, Any]) -> dict[str, Any]:
    data["photo"] = base64.b64encode(data["photo"]).decode("ascii")
    return data


def _photo_bytes(photo: str | bytes) -> bytes:
    try:
        return base64.b64decode(photo, validate=True) if isinstance(photo, str) else photo
    except ValueError:
        raise ValueError("application photo is not valid base64") from None


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
        return _with_photo_text(asdict(self))

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
        return cls(photo=_photo_bytes(photo), **values)


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


@dataclass(frozen=True)
class IntakeApplication:
    """A new application (新增申请) as the window submits it to the CMS (the fields of
    seed 001 article 6; their checks: personalization/intake.py)."""

    id_number: str
    name: str
    sex: str
    nation: str
    birth_date: str
    id_address: str  # the address on the ID card
    person_status: str  # 人员状态
    hukou_type: str  # 户口性质
    hukou_address: str  # 户口地址
    phone: str  # 移动电话 (or a fixed phone with its area code)
    postal_address: str  # 通讯地址
    employer_name: str  # 单位名称 (or the village)
    employer_code: str  # 单位编号, 11 digits (or the village number)
    bank_name: str  # 服务银行
    photo: bytes = field(repr=False, default=b"")

    def to_dict(self) -> dict[str, Any]:
        return _with_photo_text(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IntakeApplication:
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in data]
        if missing:
            raise ValueError(f"application is missing fields: {', '.join(missing)}")
        values = {n: data[n] for n in names}
        if not all(isinstance(values[n], str) for n in names):
            raise ValueError("application fields must be text")
        values["photo"] = _photo_bytes(values["photo"])
        return cls(**values)

    def __repr__(self) -> str:  # never the ID number, the phone or the photo
        return f"IntakeApplication({self.id_number[:6]}…, {self.name!r})"
