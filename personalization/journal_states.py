"""The journal's state machine and its records: the states of a card job, the transitions
allowed between them (`ALLOWED`, the rules in `journal`'s docstring), what a job and each of its
changes are (`Issuance`, `Event`, `Step`) and the journal's errors. No SQLite here: the store
(`journal_store`) keeps them, the repository (`journal.Journal`) checks and applies them.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from cardstation.drivers.redaction import mask_id_number
from cardstation.personalization.storage import (
    StorageKind,
    os_kind,
)


class State(StrEnum):
    """The states of one issuance (one card job)."""

    FETCHED = "FETCHED"
    PREVIEWED = "PREVIEWED"
    FED = "FED"
    CHIP_WRITTEN = "CHIP_WRITTEN"
    VERIFIED = "VERIFIED"
    RETURN_QUEUED = "RETURN_QUEUED"
    PRINTED = "PRINTED"
    EJECTED = "EJECTED"
    DONE = "DONE"
    REJECTED = "REJECTED"
    FAILED = "FAILED"


FORWARD: tuple[State, ...] = (
    State.FETCHED,
    State.PREVIEWED,
    State.FED,
    State.CHIP_WRITTEN,
    State.VERIFIED,
    State.RETURN_QUEUED,
    State.PRINTED,
    State.EJECTED,
    State.DONE,
)
TERMINAL: frozenset[State] = frozenset({State.DONE, State.REJECTED})
#: States the pipeline may resume to from FAILED (bounded by the state it failed from).
RESUMABLE: tuple[State, ...] = FORWARD[:-1]
_RANK = {state: i for i, state in enumerate(FORWARD)}


def _allowed() -> dict[State, frozenset[State]]:
    table: dict[State, set[State]] = {s: set() for s in State}
    for a, b in itertools.pairwise(FORWARD):
        table[a].add(b)
    for s in State:
        if s not in TERMINAL:
            table[s].add(State.REJECTED)
            if s is not State.FAILED:
                table[s].add(State.FAILED)
    table[State.FAILED].update(RESUMABLE)  # further bounded by failed_from, see _check
    return {s: frozenset(t) for s, t in table.items()}


#: Every transition the journal accepts before the per-issuance checks (failed_from, outbox).
ALLOWED: dict[State, frozenset[State]] = _allowed()


class JournalError(Exception):
    """Base class of the journal's and outbox's errors."""


class IssuanceNotFound(JournalError, KeyError):
    """No issuance with that id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "issuance not found"


class IllegalTransition(JournalError):
    """The issuance's current state does not allow the requested transition."""

    def __init__(
        self, issuance_id: str, from_state: State | None, to_state: State, detail: str = ""
    ) -> None:
        self.issuance_id = issuance_id
        self.from_state = from_state
        self.to_state = to_state
        self.detail = detail
        text = f"illegal transition {from_state} -> {to_state} for issuance {issuance_id}"
        super().__init__(f"{text}: {detail}" if detail else text)


class ReturnAlreadyQueued(IllegalTransition):
    """A return record exists for this issuance (or its idempotency key is taken)."""


class RequestIdConflict(JournalError, ValueError):
    """A client request id reused for a different ID number."""


class LiveIssuanceExists(JournalError):
    """The applicant already has a live issuance (not DONE or REJECTED): one card per person."""

    def __init__(self, existing: Issuance) -> None:
        self.existing = existing
        super().__init__(f"issuance {existing.id} ({existing.state.value}) is already making "
                         "this applicant's card")


class JournalCorrupt(JournalError):
    """The file is not a journal this version understands (corrupt, foreign or newer schema),
    or cannot be opened at all. The message names the file and what to do."""


class JournalKeyRefused(JournalError):
    """The station data key is missing, open to others, or not this journal's, or a sealed
    value does not open (tampered, moved to another row): the message names file and remedy."""


class JournalInUse(JournalError):
    """Another program (the station's server, a `cardstation run`) has the journal open, so it
    cannot be restored or compacted now."""


#: What an operator does about a journal that cannot be opened (never re-created over).
REMEDY_JOURNAL_FILE = ("restore the journal from the station's backup, or, knowing that its "
                       "history (jobs, events, queued returns) is lost, move the file away so "
                       "that a new journal is made; then start the station again")


class StorageFault(JournalError):
    """The journal (or the data folder) cannot be written now: `kind` FULL (no room) or
    UNAVAILABLE (locked by another program, an I/O error, read-only). Transient: the same
    write succeeds once the cause is gone. `cause` is in plain words, `path` the file."""

    def __init__(self, kind: StorageKind, path: Path, cause: str) -> None:
        self.kind = kind
        self.path = Path(path)
        self.cause = cause
        super().__init__(f"{cause} ({self.path})")

    @classmethod
    def from_os_error(cls, exc: OSError, path: Path) -> StorageFault:
        return cls(os_kind(exc), Path(exc.filename or path), exc.strerror or str(exc))


@dataclass
class Issuance:
    """One card job as the journal holds it. `data` holds facts gathered by the steps."""

    id: str
    client_request_id: str | None
    id_number: str
    state: State
    application: dict[str, Any]
    data: dict[str, Any]
    created_at: float
    updated_at: float
    reason: str = ""
    failed_from: State | None = None
    #: When retention removed its personal fields (`id_number` is then the masked number).
    purged_at: float | None = None

    def __repr__(self) -> str:  # never the full ID number, never the photo
        return (
            f"Issuance(id={self.id!r}, state={self.state.value}, "
            f"id_number={mask_id_number(self.id_number)!r}, "
            f"client_request_id={self.client_request_id!r}, reason={self.reason!r})"
        )


@dataclass
class Event:
    """One committed change: a transition, or a data update (`from_state == to_state`).
    The first event of every issuance has `from_state` None and `to_state` FETCHED."""

    issuance_id: str
    seq: int
    at: float
    from_state: State | None
    to_state: State
    reason: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    """One transition of `Journal.transitions` (the arguments of `Journal.transition`)."""

    to: State
    reason: str = ""
    data: dict[str, Any] | None = None
    return_record: dict[str, Any] | None = None
    idempotency_key: str | None = None


