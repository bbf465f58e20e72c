"""Intake (制卡信息采集): the new application a window collects, and its checks.

seed 001 article 6: when the CMS has no data of the person, a new application (新增申请)
needs, besides the ID card's fields and the photo, 人员状态, 户口性质, 户口地址, 移动电话 (or a
fixed phone), 通讯地址, 单位名称 and 单位编号 (employees: the employer's 11-digit number; farmers:
their village's number), and the service bank (服务银行) may not be 待定. Checks return
findings (field, code, message) like the rest of the validation; messages never carry the full
ID number.
"""

from __future__ import annotations

import re

from cardstation.personalization.findings import Finding
from cardstation.personalization.model import IntakeApplication
from cardstation.personalization.rules import (
    DEFAULT_PHOTO_SPEC,
    PhotoSpec,
    check_id_number,
    check_name,
    check_photo,
)

__all__ = ["BANK_UNDECIDED", "HUKOU_TYPES", "PERSON_STATUSES", "IntakeApplication",
           "check_intake"]

#: 人员状态 and 户口性质 as the collection client offers them
PERSON_STATUSES = ("在职", "退休", "城乡居民", "学生", "灵活就业", "其他")
HUKOU_TYPES = ("城镇", "农村")
#: the bank the CMS offers before one is chosen; never accepted (seed 001 article 6)
BANK_UNDECIDED = "待定"
MAX_TEXT = 100

_MOBILE = re.compile(r"1[3-9]\d{9}")
_FIXED = re.compile(r"0\d{2,3}-?\d{7,8}")
_EMPLOYER_CODE = re.compile(r"\d{11}")


_LABELS = {
    "id_address": "住址", "person_status": "人员状态", "hukou_type": "户口性质",
    "hukou_address": "户口地址", "phone": "移动电话", "postal_address": "通讯地址",
    "employer_name": "单位名称", "employer_code": "单位编号", "bank_name": "服务银行",
}


def check_intake(app: IntakeApplication, spec: PhotoSpec = DEFAULT_PHOTO_SPEC
                 ) -> list[Finding]:
    """Every finding of a new application; [] means it may be submitted."""
    findings = check_id_number(app.id_number) + check_name(app.name)
    for name, label in _LABELS.items():
        value = getattr(app, name)
        if not value.strip():
            findings.append(Finding(name, "required", f"{label} ({name}) is required"))
        elif len(value) > MAX_TEXT:
            findings.append(Finding(name, "too_long", f"{label} ({name}) is longer than "
                                    f"{MAX_TEXT} characters"))
    if app.person_status.strip() and app.person_status not in PERSON_STATUSES:
        findings.append(Finding("person_status", "unknown_value",
                                f"人员状态 must be one of {'、'.join(PERSON_STATUSES)}"))
    if app.hukou_type.strip() and app.hukou_type not in HUKOU_TYPES:
        findings.append(Finding("hukou_type", "unknown_value",
                                f"户口性质 must be one of {'、'.join(HUKOU_TYPES)}"))
    if app.phone.strip() and not (_MOBILE.fullmatch(app.phone) or _FIXED.fullmatch(app.phone)):
        findings.append(Finding("phone", "invalid", "移动电话 must be an 11-digit mobile number "
                                "(or a fixed phone with its area code, e.g. 0373-1234567)"))
    if app.employer_code.strip() and not _EMPLOYER_CODE.fullmatch(app.employer_code):
        findings.append(Finding("employer_code", "invalid", "单位编号 must be 11 digits (the "
                                "employer's number, or the village number)"))
    if app.bank_name.strip() == BANK_UNDECIDED:
        findings.append(Finding("bank_name", "undecided", "服务银行 may not be 待定: choose the "
                                "holder's bank"))
    findings += check_photo(app.photo, spec)
    return findings
