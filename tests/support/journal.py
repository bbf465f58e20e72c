"""Journal states for tests: a new issuance walked forward to the state a test needs."""

from __future__ import annotations

from cardstation.personalization.journal import FORWARD, Issuance, Journal, State
from tests.support.applicants import ID_NUMBER, application, return_record


def advance_to(journal: Journal, iss: Issuance, target: State) -> Issuance:
    """Walk an issuance forward (FETCHED .. DONE) to `target`."""
    while iss.state != target:
        nxt = FORWARD[FORWARD.index(iss.state) + 1]
        record = return_record(iss.id_number) if nxt is State.RETURN_QUEUED else None
        iss = journal.transition(iss.id, nxt, data={nxt.value.lower(): True}, return_record=record)
    return iss


def put_in(journal: Journal, state: State, failed_from: State = State.VERIFIED) -> Issuance:
    """A new issuance in `state` (FAILED/REJECTED reached from `failed_from`)."""
    iss = journal.create(application(), ID_NUMBER)
    if state in (State.FAILED, State.REJECTED):
        iss = advance_to(journal, iss, failed_from)
        return journal.transition(iss.id, state, reason="test")
    return advance_to(journal, iss, state)
