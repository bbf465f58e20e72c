"""Simulated provincial card-management system (省卡管, "CMS") over HTTP/JSON on loopback.

`CmsSimulator` keeps a ledger of applications, claims, returns (deduplicated by idempotency
key), failure reports and conflicts, serves it over HTTP, and takes injected faults
(`FAULTS`). `generate_applicants` makes synthetic holders with valid numbers and photos.
"""

from cardstation.simulators.cms.applicants import (
    EXAMPLE_CARD_NUMBER,
    EXAMPLE_ID_NUMBER,
    bad_photo,
    example_applicant,
    generate_applicants,
)
from cardstation.simulators.cms.ledger import STATUSES, Ledger, LedgerError
from cardstation.simulators.cms.server import FAULTS, CmsSimulator

__all__ = [
    "EXAMPLE_CARD_NUMBER",
    "EXAMPLE_ID_NUMBER",
    "FAULTS",
    "STATUSES",
    "CmsSimulator",
    "Ledger",
    "LedgerError",
    "bad_photo",
    "example_applicant",
    "generate_applicants",
]
