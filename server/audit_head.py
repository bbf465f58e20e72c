"""The audit log's head kept in the journal (a `meta` row), where a cut file shows.

The value is JSON {"seq": N, "mac": "<hex>"}. `JournalHeadStore` writes it after every append;
`read_head` reads it from a journal file without opening it for writing (`audit verify`).
"""

from __future__ import annotations

import json
from pathlib import Path

from cardstation.personalization.journal import Journal, JournalCorrupt, read_meta
from cardstation.server.audit import AuditHead

META_KEY = "audit_head"


def decode(value: str | None) -> AuditHead | None:
    """The head in a meta value; JournalCorrupt when it is not one."""
    if value is None:
        return None
    try:
        data = json.loads(value)
        head = AuditHead(int(data["seq"]), str(data["mac"]))
    except (ValueError, TypeError, KeyError):
        raise JournalCorrupt(f"the journal's {META_KEY} row is damaged") from None
    return head


def encode(head: AuditHead) -> str:
    return json.dumps({"seq": head.seq, "mac": head.mac}, sort_keys=True)


class JournalHeadStore:
    """The head in an open journal (its own connection to the journal file)."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def load(self) -> AuditHead | None:
        return decode(self.journal.meta(META_KEY))

    def save(self, head: AuditHead) -> None:
        self.journal.set_meta(META_KEY, encode(head))

    def clear(self) -> None:
        self.journal.set_meta(META_KEY, None)


def read_head(journal_path: str | Path) -> AuditHead | None:
    """The head recorded in the journal file (FileNotFoundError / JournalCorrupt)."""
    return decode(read_meta(journal_path, META_KEY))
