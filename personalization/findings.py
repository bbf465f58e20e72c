"""Validation findings: what the operator (or an upstream caller) must fix before a card is fed."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Finding:
    """One problem with one field of an application.

    `field` names the application field (e.g. "id_number"), `code` is a stable machine-readable
    reason (e.g. "check_char_mismatch"), `message` is for people and never carries a full ID
    number, PIN or key.
    """

    field: str
    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)
