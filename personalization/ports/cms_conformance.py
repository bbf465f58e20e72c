"""The CMS conformance kit: named checks a CMS adapter must pass before a station uses it.

A province's integrator fills a `ConformanceBed` (a factory making their adapter for a station
id, and the ID numbers of test applicants in their test CMS) and runs `run_checks(bed)`, or
`cardstation cms conformance ...` (docs/cms-adapter.md). Each check drives the adapter the way
the station does and returns PASS, FAIL or SKIP with a message.

The checks change the CMS under test (claims, returns, failure reports, temporary cards), so
they run in the fixed order of `CHECKS` and each names the bed applicants it uses:
- `ready` is fetched, claimed, given certificates, returned (made), then restored;
- `ready2` is claimed, reported failed, restored, claimed by another station, restored;
- `not_marked` and `unknown` are only read;
- the temporary-card data: its first card is recorded then recalled, its second recorded then
  withdrawn (voided), its unknown code is only read;
- the card-life data (a CMS implementing CmsCardLife): a new holder is submitted, charged,
  marked, made, refused enablement while a temporary card is out and for a wrong card, enabled,
  reported lost (temporary, lifted, formal), replaced, the replacement made, enabled and
  cancelled, and the holder submitted again (allowed once the card is cancelled). That holder
  ends with a new application: each run needs a holder the CMS has never seen.
Both ready applicants end restored (ready, unclaimed), and every idempotency key carries a
random part of its own per run, so the kit can run again against the same applicants.

A check whose prerequisite failed is skipped (its result would only repeat that failure). Every
error the adapter raises during the run is kept; the last check looks at all of them.

This module imports only the port, the domain model and the standard library: an integrator
can read it as the port's executable contract, and it runs against any adapter.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeVar

from cardstation.personalization.cert_assumptions import ACCEPTED_STATUSES, STATUS_ISSUED_BEFORE
from cardstation.personalization.model import Application, IntakeApplication, ReturnRecord
from cardstation.personalization.ports.cms import (
    CMS_CODES,
    AlreadyMade,
    ApplicationNotFound,
    CardMismatch,
    CardStateInvalid,
    ClaimedElsewhere,
    Cms,
    CmsCardLife,
    CmsError,
    CmsUnavailable,
    FormalLossRequired,
    HolderHasCard,
    NotMarkedForInstantIssuance,
    RestoreRequired,
    ReturnConflict,
    TemporaryCardOutstanding,
    TemporaryCardUnknown,
)

Status = Literal["pass", "fail", "skip"]
E = TypeVar("E", bound=CmsError)

# An 18-character resident ID number (GB 11643) standing alone in a text.
_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])(\d{6})\d{8}(\d{3}[0-9Xx])(?![0-9A-Za-z])")
_DATE = re.compile(r"\d{8}")

#: The Cms methods the kit calls through its recorder (every method of the port).
PORT_METHODS = (
    "fetch", "claim", "submit_return", "report_failure", "restore", "issue_certificates",
    "check_temporary_card", "record_temporary_card", "get_temporary_card",
    "recall_temporary_card", "void_temporary_card",
)
#: The CmsCardLife methods (an optional part of the port)
CARD_LIFE_METHODS = (
    "submit_application", "register_fee", "mark_instant_issuance", "card_life",
    "enable_card", "report_loss", "lift_loss", "cancel_card", "apply_replacement",
)


def mask(text: str) -> str:
    """Mask every ID number in `text` to its first 6 and last 4 characters."""
    return _ID_NUMBER.sub(lambda m: m.group(1) + "*" * 8 + m.group(2), text)


@dataclass(frozen=True)
class TemporaryCardBed:
    """Temporary-card (临时卡) test data: two card identification codes the CMS has no issued
    record of, a holder with no temporary card out, and a code the CMS does not know."""

    card_id_code: str
    second_card_id_code: str
    holder_id: str
    holder_name: str
    unknown_card_id_code: str
    valid_from: str = field(default_factory=lambda: time.strftime("%Y%m%d"))
    valid_to: str = field(default_factory=lambda: time.strftime(
        "%Y%m%d", time.localtime(time.time() + 90 * 86400)))


@dataclass(frozen=True)
class CardLifeBed:
    """Card-life test data: a complete new application (新增申请) of a holder the CMS has no
    data of, and a temporary card identification code the CMS has no record of."""

    application: IntakeApplication
    temporary_card_id_code: str
    valid_from: str = field(default_factory=lambda: time.strftime("%Y%m%d"))
    valid_to: str = field(default_factory=lambda: time.strftime(
        "%Y%m%d", time.localtime(time.time() + 90 * 86400)))


@dataclass(frozen=True)
class ConformanceBed:
    """What the kit needs to know about the CMS under test (see the module docstring for which
    check uses which applicant).

    - `factory(station_id)`: a fresh adapter making requests in that station's name;
    - `ready`, `ready2`: applicants marked for instant issuance, fee registered, not claimed;
    - `not_marked`: an applicant without the instant-issuance mark (or the fee registration);
    - `unknown`: a well-formed ID number the CMS has no application for;
    - `unreachable(station_id)`: an adapter pointed at an address where nothing answers
      (a closed port); None skips the check;
    - `temporary`: temporary-card data; None skips those checks (a CMS without them);
    - `card_life`: card-life data (CmsCardLife); None skips those checks;
    - `certificate_public_key`: a 65-byte card signing public key for the GetCA check (3rd
      generation cards); None skips it;
    - `same_ack`: the CMS answers a repeated return with the acknowledgement it gave first
      (set False only if the adapter's documentation says a repeat gets a new one);
    - `card_id_code`, `atr`, `bank_account`: what the return records carry besides the
      application's own fields (synthetic values by default);
    - `key_prefix`: the start of every idempotency key the kit sends (each run adds its own
      random part, so no two runs share a key).
    """

    factory: Callable[[str], Cms]
    station: str
    ready: str
    ready2: str
    not_marked: str
    unknown: str
    other_station: str = ""
    unreachable: Callable[[str], Cms] | None = None
    temporary: TemporaryCardBed | None = None
    card_life: CardLifeBed | None = None
    certificate_public_key: bytes | None = None
    same_ack: bool = True
    card_id_code: str = field(default_factory=lambda: secrets.token_hex(16).upper())
    atr: str = "3B6C00000000000000000000000000"
    bank_account: str = "6217000000000000000"
    key_prefix: str = "conformance"

    def __post_init__(self) -> None:
        ids = {"ready": self.ready, "ready2": self.ready2, "not_marked": self.not_marked,
               "unknown": self.unknown}
        empty = [name for name, value in ids.items() if not value]
        if empty or not self.station:
            raise ValueError("the bed needs a station id and the ID numbers "
                             + ", ".join(empty or ids))
        if len(set(ids.values())) != len(ids):
            raise ValueError("ready, ready2, not_marked and unknown must be four different "
                             "ID numbers")
        if not self.other_station:
            object.__setattr__(self, "other_station", f"{self.station}-conformance")
        if self.other_station == self.station:
            raise ValueError("other_station must differ from station")


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    message: str
    seconds: float = 0.0


class CheckFailed(Exception):
    """One expectation of a check was not met; the message says which (ID numbers masked)."""


class _Skip(Exception):
    """The bed gives no data for this check (an optional part of the port)."""


@dataclass
class _Run:
    """The state the checks share: the bed, what they learnt, every error the adapter raised."""

    bed: ConformanceBed
    errors: list[tuple[str, BaseException]] = field(default_factory=list)
    application: Application | None = None
    acks: list[str] = field(default_factory=list)
    nonce: str = field(default_factory=lambda: secrets.token_hex(6))

    def adapter(self, station: str | None = None, *, unreachable: bool = False) -> _Recorder:
        factory = self.bed.unreachable if unreachable else self.bed.factory
        if factory is None:
            raise CheckFailed("the bed has no adapter for this check")
        return _Recorder(factory(station or self.bed.station), self)

    def key(self, what: str) -> str:
        return f"{self.bed.key_prefix}-{self.nonce}-{what}"


class _Recorder:
    """Wraps an adapter: each port method is called as is, and what it raises is kept."""

    def __init__(self, adapter: Cms, run: _Run) -> None:
        self.adapter = adapter
        self._run = run

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name not in PORT_METHODS and name not in CARD_LIFE_METHODS:
            raise AttributeError(name)
        method = getattr(self.adapter, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            except Exception as exc:
                self._run.errors.append((name, exc))
                raise

        return call


# ---- expectations --------------------------------------------------------------------------


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {mask(str(exc))[:200]}"


def error_problems(exc: BaseException, bed: ConformanceBed | None = None) -> list[str]:
    """What is wrong with an error an adapter raised, as the station relies on it ([] = fine):
    a CmsError, its code in CMS_CODES, a "cause — remedy" message without a full ID number."""
    if not isinstance(exc, CmsError):
        return [f"raised {type(exc).__name__}, not a CmsError (the station shows no reason "
                "for it and does not know whether to retry)"]
    problems = []
    if exc.code not in CMS_CODES:
        problems.append(f"its code {exc.code!r} is not one of the port's CMS_CODES")
    text = str(exc)
    cause, dash, remedy = text.partition(" — ")
    if not dash or not cause.strip() or not remedy.strip():
        problems.append("its message is not \"cause — remedy\"")
    known = [] if bed is None else [bed.ready, bed.ready2, bed.not_marked, bed.unknown]
    if bed is not None and bed.temporary is not None:
        known.append(bed.temporary.holder_id)
    if bed is not None and bed.card_life is not None:
        known.append(bed.card_life.application.id_number)
    if _ID_NUMBER.search(text) or any(i and i in text for i in known):
        problems.append("its message contains a full ID number")
    if not isinstance(exc.retryable, bool):
        problems.append("its retryable is not True or False")
    return problems


def raises(error: type[E], what: str, bed: ConformanceBed, call: Callable[[], Any]) -> E:
    """`call` must raise `error` (a well-formed one, see error_problems); returns it. Anything
    else, success included, fails the check."""
    try:
        call()
    except Exception as exc:
        if not isinstance(exc, error):
            raise CheckFailed(f"{what}: expected {error.__name__}, got {_describe(exc)}") \
                from None
        problems = error_problems(exc, bed)
        if problems:
            raise CheckFailed(f"{what}: {error.__name__} raised, but {'; '.join(problems)} "
                              f"({_describe(exc)})") from None
        return exc
    raise CheckFailed(f"{what}: expected {error.__name__}, but it succeeded")


def step(what: str, call: Callable[[], Any]) -> Any:
    """Run one call that must succeed; a raise fails the check, saying which step."""
    try:
        return call()
    except Exception as exc:
        raise CheckFailed(f"{what}: {_describe(exc)}") from None


def _application_problems(app: object, id_number: str) -> list[str]:
    if not isinstance(app, Application):
        return [f"returned {type(app).__name__}, not an Application"]
    problems = []
    if app.id_number != id_number:
        problems.append(f"returned the application of {mask(app.id_number)}, "
                        f"not of {mask(id_number)}")
    required = ("name", "sex", "nation", "birthplace", "card_number", "batch")
    empty = [name for name in required if not getattr(app, name)]
    if empty:
        problems.append("empty fields: " + ", ".join(empty))
    bad_dates = [name for name in ("birth_date", "issue_date", "expiry_date")
                 if not _DATE.fullmatch(getattr(app, name) or "")]
    if bad_dates:
        problems.append("dates not YYYYMMDD: " + ", ".join(bad_dates))
    if not app.photo:
        problems.append("no photo")
    elif not app.photo.startswith(b"\xff\xd8\xff"):
        problems.append("the photo is not JPEG bytes")
    return problems


def _return_record(run: _Run, app: Application, **changes: str) -> ReturnRecord:
    record = ReturnRecord(
        card_number=app.card_number, id_number=app.id_number, name=app.name,
        issue_date=app.issue_date, expiry_date=app.expiry_date,
        card_id_code=run.bed.card_id_code, atr=run.bed.atr,
        bank_account=run.bed.bank_account, batch=app.batch)
    return replace(record, **changes)


# ---- the checks ----------------------------------------------------------------------------


def check_port(run: _Run) -> str:
    adapter = step("the factory", lambda: run.bed.factory(run.bed.station))
    if not isinstance(adapter, Cms):
        missing = [m for m in PORT_METHODS if not callable(getattr(adapter, m, None))]
        raise CheckFailed(f"{type(adapter).__name__} does not implement the Cms port "
                          f"(missing: {', '.join(missing)})")
    return f"{type(adapter).__name__} implements every method of the Cms port"


def check_fetch(run: _Run) -> str:
    cms, ready = run.adapter(), run.bed.ready
    app = step("fetch(ready)", lambda: cms.fetch(ready))
    problems = _application_problems(app, ready)
    if problems:
        raise CheckFailed("fetch(ready) " + "; ".join(problems))
    again = step("fetch(ready) again", lambda: cms.fetch(ready))
    if again != app:
        raise CheckFailed("fetching the same application twice gave different applications")
    run.application = app
    return (f"fetch({mask(ready)}) returns its application (photo {len(app.photo)} bytes, "
            "every field the pipeline uses); fetching again gives the same")


def check_unknown(run: _Run) -> str:
    cms, unknown = run.adapter(), run.bed.unknown
    raises(ApplicationNotFound, "fetch(unknown)", run.bed, lambda: cms.fetch(unknown))
    raises(ApplicationNotFound, "claim(unknown)", run.bed, lambda: cms.claim(unknown))
    return "fetch and claim of an unknown ID number raise ApplicationNotFound"


def check_not_marked(run: _Run) -> str:
    cms, not_marked = run.adapter(), run.bed.not_marked
    raises(NotMarkedForInstantIssuance, "fetch(not_marked)", run.bed,
           lambda: cms.fetch(not_marked))
    raises(NotMarkedForInstantIssuance, "claim(not_marked)", run.bed,
           lambda: cms.claim(not_marked))
    return "fetch and claim of an unmarked application raise NotMarkedForInstantIssuance"


def check_claim_twice(run: _Run) -> str:
    cms, ready = run.adapter(), run.bed.ready
    step("claim(ready)", lambda: cms.claim(ready))
    step("claim(ready) again from the same station", lambda: cms.claim(ready))
    step("claim(ready) from a new adapter of the same station",
         lambda: run.adapter().claim(ready))
    return "claiming again from the same station is harmless (also from a new adapter)"


def check_claim_elsewhere(run: _Run) -> str:
    other = run.adapter(run.bed.other_station)
    exc = raises(ClaimedElsewhere, "claim from another station", run.bed,
                 lambda: other.claim(run.bed.ready))
    if exc.station not in (None, run.bed.station):
        raise CheckFailed(f"ClaimedElsewhere names station {exc.station!r}, but "
                          f"{run.bed.station!r} holds the claim")
    step("claim(ready) by the holder after the refusal", lambda: run.adapter().claim(
        run.bed.ready))
    return "a claim from another station raises ClaimedElsewhere; the holder keeps its claim"


def check_certificates(run: _Run) -> str:
    key = run.bed.certificate_public_key
    if key is None:
        raise _Skip("no certificate_public_key in the bed (only 3rd-generation cards use "
                    "GetCA)")
    cms, ready, code = run.adapter(), run.bed.ready, run.bed.card_id_code
    first = step("issue_certificates", lambda: cms.issue_certificates(ready, code, key))
    if first.status not in ACCEPTED_STATUSES or not first.sign_cert or not first.enc_cert:
        raise CheckFailed(f"issue_certificates answered status {first.status} without both "
                          "certificates")
    again = step("issue_certificates again", lambda: cms.issue_certificates(ready, code, key))
    if again.status != STATUS_ISSUED_BEFORE or again.sign_cert != first.sign_cert:
        raise CheckFailed("asking again for the same card's certificates did not give the "
                          f"same certificates with status {STATUS_ISSUED_BEFORE}")
    return "certificates issued for the claimed card; asking again gives the same ones"


def check_return_idempotent(run: _Run) -> str:
    cms, app = run.adapter(), run.application
    if app is None:
        raise CheckFailed("no application was fetched")
    record, key = _return_record(run, app), run.key("return")
    first = step("submit_return", lambda: cms.submit_return(record, key))
    second = step("submit_return again (same key, same record)",
                  lambda: cms.submit_return(record, key))
    for ack in (first, second):
        if not isinstance(ack, str) or not ack:
            raise CheckFailed(f"submit_return answered {ack!r}, not an acknowledgement")
    if run.bed.same_ack and first != second:
        raise CheckFailed(f"the repeat was acknowledged {second!r}, the first {first!r} (set "
                          "same_ack False only if the adapter documents this)")
    run.acks = [first, second]
    return (f"the same return under the same key is acknowledged both times ({first}"
            + (")" if first == second else f", then {second})"))


def check_return_conflict(run: _Run) -> str:
    cms, app = run.adapter(), run.application
    if app is None:
        raise CheckFailed("no application was fetched")
    key = run.key("return")
    different = _return_record(run, app, atr=run.bed.atr + "00")  # another card's ATR
    raises(ReturnConflict, "a different record under the same key", run.bed,
           lambda: cms.submit_return(different, key))
    again = step("the first record again after the conflict",
                 lambda: cms.submit_return(_return_record(run, app), key))
    if run.bed.same_ack and run.acks and again != run.acks[0]:
        raise CheckFailed(f"after the conflict the first record was acknowledged {again!r}, "
                          f"not {run.acks[0]!r}")
    return "a different record under a used key raises ReturnConflict and changes nothing"


def check_claim_made(run: _Run) -> str:
    # the station that made it asks: a CMS may well tell another station ClaimedElsewhere
    cms = run.adapter()
    raises(AlreadyMade, "claim after the return", run.bed, lambda: cms.claim(run.bed.ready))
    return "claiming an application whose card was returned raises AlreadyMade"


def check_restore_made(run: _Run) -> str:
    cms, ready = run.adapter(), run.bed.ready
    step("restore(ready) after its return", lambda: cms.restore(ready))
    step("claim(ready) after the restore", lambda: cms.claim(ready))
    step("restore(ready) again (leaves it ready)", lambda: cms.restore(ready))
    return "restore puts a made application back to claimable (恢复申请, the re-make path)"


def check_failure_restore(run: _Run) -> str:
    cms, ready2, key = run.adapter(), run.bed.ready2, run.key("failure")
    reason = "conformance kit: simulated failure"
    step("claim(ready2)", lambda: cms.claim(ready2))
    step("report_failure", lambda: cms.report_failure(ready2, reason, key))
    step("report_failure again (same key)", lambda: cms.report_failure(ready2, reason, key))
    try:
        app = cms.fetch(ready2)
    except RestoreRequired as exc:
        problems = error_problems(exc, run.bed)
        if problems:
            raise CheckFailed("fetch after the failure: " + "; ".join(problems)) from None
    except Exception as exc:
        raise CheckFailed(f"fetch after the failure: expected the application or "
                          f"RestoreRequired, got {_describe(exc)}") from None
    else:
        problems = _application_problems(app, ready2)
        if problems:
            raise CheckFailed("fetch after the failure " + "; ".join(problems))
    raises(RestoreRequired, "claim after the failure report", run.bed,
           lambda: cms.claim(ready2))
    step("restore(ready2)", lambda: cms.restore(ready2))
    step("claim(ready2) after the restore", lambda: cms.claim(ready2))
    return ("a failure report (repeated with its key) makes claim raise RestoreRequired; "
            "after restore the application is claimable again")


def check_restore_releases(run: _Run) -> str:
    cms, ready2 = run.adapter(), run.bed.ready2
    step("restore(ready2) while this station holds it", lambda: cms.restore(ready2))
    step("claim(ready2) from another station after the restore",
         lambda: run.adapter(run.bed.other_station).claim(ready2))
    step("restore(ready2) again (leaves it ready)", lambda: cms.restore(ready2))
    return "restore releases the claim: another station can claim the application"


def _temporary(run: _Run) -> TemporaryCardBed:
    if run.bed.temporary is None:
        raise _Skip("no temporary-card data in the bed")
    return run.bed.temporary


def check_temporary_record(run: _Run) -> str:
    t, cms = _temporary(run), run.adapter()
    before = step("check_temporary_card before recording",
                  lambda: cms.check_temporary_card(t.card_id_code, t.holder_id))
    if before is not False:
        raise CheckFailed(f"check_temporary_card of a new card answered {before!r}, not False "
                          "(give a card and holder the CMS has no issued record of)")
    record = (t.card_id_code, t.holder_id, t.holder_name, t.valid_from, t.valid_to)
    first = step("record_temporary_card", lambda: cms.record_temporary_card(*record))
    second = step("record_temporary_card again", lambda: cms.record_temporary_card(*record))
    if first is not False or second is not True:
        raise CheckFailed(f"recording answered {first!r} then {second!r}; expected False (new) "
                          "then True (the CMS already had this very card)")
    after = step("check_temporary_card after recording",
                 lambda: cms.check_temporary_card(t.card_id_code, t.holder_id))
    if after is not True:
        raise CheckFailed(f"check_temporary_card of the recorded card answered {after!r}")
    held = step("get_temporary_card", lambda: cms.get_temporary_card(t.card_id_code))
    expected = {"holder_id": t.holder_id, "status": "issued", "valid_from": t.valid_from}
    wrong = [k for k, v in expected.items() if not isinstance(held, dict) or held.get(k) != v]
    if wrong:
        raise CheckFailed("get_temporary_card's record has wrong or missing " + ", ".join(wrong))
    return "a temporary card is recorded once (a repeat says so), checked and read back"


def check_temporary_outstanding(run: _Run) -> str:
    t, cms = _temporary(run), run.adapter()
    raises(TemporaryCardOutstanding, "check a second card for the holder", run.bed,
           lambda: cms.check_temporary_card(t.second_card_id_code, t.holder_id))
    raises(TemporaryCardOutstanding, "record a second card for the holder", run.bed,
           lambda: cms.record_temporary_card(t.second_card_id_code, t.holder_id,
                                             t.holder_name, t.valid_from, t.valid_to))
    return "a second temporary card for a holder with one out raises TemporaryCardOutstanding"


def check_temporary_recall(run: _Run) -> str:
    t, cms = _temporary(run), run.adapter()
    step("recall_temporary_card", lambda: cms.recall_temporary_card(t.card_id_code))
    step("recall_temporary_card again", lambda: cms.recall_temporary_card(t.card_id_code))
    held = step("get_temporary_card after the recall",
                lambda: cms.get_temporary_card(t.card_id_code))
    if not isinstance(held, dict) or held.get("status") == "issued":
        raise CheckFailed("after the recall get_temporary_card still says \"issued\"")
    return "a recall (repeatable) ends the card's \"issued\" status"


def check_temporary_void(run: _Run) -> str:
    t, cms = _temporary(run), run.adapter()
    record = (t.second_card_id_code, t.holder_id, t.holder_name, t.valid_from, t.valid_to)
    step("record the second card after the recall", lambda: cms.record_temporary_card(*record))
    step("void_temporary_card", lambda: cms.void_temporary_card(*record[:2]))
    step("void_temporary_card again", lambda: cms.void_temporary_card(*record[:2]))
    held = step("get_temporary_card after the void",
                lambda: cms.get_temporary_card(t.second_card_id_code))
    if not isinstance(held, dict) or held.get("status") == "issued":
        raise CheckFailed("after the void get_temporary_card still says \"issued\"")
    check = step("check_temporary_card after the void",
                 lambda: cms.check_temporary_card(t.card_id_code, t.holder_id))
    if check is not False:
        raise CheckFailed("after the void the holder still has a temporary card out")
    return "after a recall the holder can be given another card; a void (repeatable) " \
        "withdraws it"


def check_temporary_unknown(run: _Run) -> str:
    t, cms = _temporary(run), run.adapter()
    raises(TemporaryCardUnknown, "get an unknown temporary card", run.bed,
           lambda: cms.get_temporary_card(t.unknown_card_id_code))
    raises(TemporaryCardUnknown, "recall an unknown temporary card", run.bed,
           lambda: cms.recall_temporary_card(t.unknown_card_id_code))
    return "an unknown card identification code raises TemporaryCardUnknown"


def _card_life(run: _Run) -> tuple[CardLifeBed, Any]:
    if run.bed.card_life is None:
        raise _Skip("no card-life data in the bed")
    return run.bed.card_life, run.adapter()


def _state(cms: Any, id_number: str, expected: str, after: str) -> None:
    life = step(f"card_life after {after}", lambda: cms.card_life(id_number))
    if getattr(life, "state", None) != expected:
        raise CheckFailed(f"after {after} the card's state is {getattr(life, 'state', life)!r}, "
                          f"not {expected!r}")


def check_card_life_port(run: _Run) -> str:
    if run.bed.card_life is None:
        raise _Skip("no card-life data in the bed")
    adapter = step("the factory", lambda: run.bed.factory(run.bed.station))
    if not isinstance(adapter, CmsCardLife):
        missing = [m for m in CARD_LIFE_METHODS if not callable(getattr(adapter, m, None))]
        raise CheckFailed(f"{type(adapter).__name__} does not implement CmsCardLife "
                          f"(missing: {', '.join(missing)})")
    return f"{type(adapter).__name__} implements every method of CmsCardLife"


def _make(run: _Run, cms: Any, holder: str, what: str) -> Application:
    """Charge, mark, fetch, claim and return the holder's application: the card is made."""
    step(f"register_fee ({what})", lambda: cms.register_fee(holder))
    step(f"mark_instant_issuance ({what})", lambda: cms.mark_instant_issuance(holder))
    app = step(f"fetch ({what})", lambda: cms.fetch(holder))
    step(f"claim ({what})", lambda: cms.claim(holder))
    step(f"submit_return ({what})",
         lambda: cms.submit_return(_return_record(run, app), run.key(f"life-{what}")))
    return app


def check_intake_submit(run: _Run) -> str:
    bed, cms = _card_life(run)
    application, key = bed.application, run.key("intake")
    first = step("submit_application", lambda: cms.submit_application(application, key))
    again = step("submit_application again (same key)",
                 lambda: cms.submit_application(application, key))
    if not isinstance(first, str) or not first or again != first:
        raise CheckFailed(f"submit_application answered {first!r}, then {again!r}: expected "
                          "the same application number twice")
    raises(HolderHasCard, "a second application for the holder", run.bed,
           lambda: cms.submit_application(application, run.key("intake-second")))
    raises(CardStateInvalid, "the mark before the fee registration", run.bed,
           lambda: cms.mark_instant_issuance(application.id_number))
    _state(cms, application.id_number, "applied", "the new application")
    return "a new application is taken once (a repeat gives its number); a second one for the " \
        "holder raises HolderHasCard; the mark needs the fee first"


def check_hand_over(run: _Run) -> str:
    bed, cms = _card_life(run)
    holder = bed.application.id_number
    raises(CardStateInvalid, "enable before the card is made", run.bed,
           lambda: cms.enable_card(holder, run.bed.card_id_code))
    _make(run, cms, holder, "new")
    _state(cms, holder, "made", "the return")
    step("record a temporary card for the holder", lambda: cms.record_temporary_card(
        bed.temporary_card_id_code, holder, bed.application.name, bed.valid_from, bed.valid_to))
    raises(TemporaryCardOutstanding, "enable with a temporary card out", run.bed,
           lambda: cms.enable_card(holder, run.bed.card_id_code))
    step("recall the temporary card", lambda: cms.recall_temporary_card(
        bed.temporary_card_id_code))
    raises(CardMismatch, "enable another card", run.bed,
           lambda: cms.enable_card(holder, "0" * 32))
    step("enable_card", lambda: cms.enable_card(holder, run.bed.card_id_code))
    step("enable_card again", lambda: cms.enable_card(holder, run.bed.card_id_code))
    _state(cms, holder, "active", "the enablement")
    return "the card is enabled only once made, with no temporary card out, and only the " \
        "card made (CardStateInvalid, TemporaryCardOutstanding, CardMismatch)"


def check_loss(run: _Run) -> str:
    bed, cms = _card_life(run)
    holder = bed.application.id_number
    raises(FormalLossRequired, "a replacement of an active card", run.bed,
           lambda: cms.apply_replacement(holder, "lost"))
    step("report_loss temporary", lambda: cms.report_loss(holder, "temporary"))
    _state(cms, holder, "lost_temporary", "the temporary loss report")
    raises(FormalLossRequired, "a replacement after a temporary loss report", run.bed,
           lambda: cms.apply_replacement(holder, "lost"))
    step("lift_loss", lambda: cms.lift_loss(holder))
    _state(cms, holder, "active", "the lift")
    step("report_loss formal", lambda: cms.report_loss(holder, "formal"))
    step("report_loss formal again", lambda: cms.report_loss(holder, "formal"))
    _state(cms, holder, "lost_formal", "the formal loss report")
    return "loss reports (temporary, formal) and their lift; a replacement before the formal " \
        "report raises FormalLossRequired"


def check_replacement(run: _Run) -> str:
    bed, cms = _card_life(run)
    holder = bed.application.id_number
    old = step("card_life before the replacement", lambda: cms.card_life(holder))
    number = step("apply_replacement", lambda: cms.apply_replacement(holder, "lost"))
    again = step("apply_replacement again", lambda: cms.apply_replacement(holder, "lost"))
    if not isinstance(number, str) or not number or again != number:
        raise CheckFailed(f"apply_replacement answered {number!r}, then {again!r}")
    new = step("card_life after the replacement", lambda: cms.card_life(holder))
    if new.state != "applied" or new.replaces != old.card_number \
            or new.card_number == old.card_number:
        raise CheckFailed(f"after the replacement: state {new.state!r}, replaces "
                          f"{new.replaces!r}, card {new.card_number!r} (old {old.card_number!r})")
    raises(CardStateInvalid, "cancel a card not yet made", run.bed,
           lambda: cms.cancel_card(holder, "conformance"))
    return "a replacement after the formal loss report is a new application (new card number) " \
        "that names the card it replaces"


def check_cancel(run: _Run) -> str:
    bed, cms = _card_life(run)
    holder = bed.application.id_number
    _make(run, cms, holder, "replacement")
    step("enable the replacement", lambda: cms.enable_card(holder, run.bed.card_id_code))
    step("cancel_card", lambda: cms.cancel_card(holder, "conformance"))
    step("cancel_card again", lambda: cms.cancel_card(holder, "conformance"))
    _state(cms, holder, "cancelled", "the cancellation")
    step("submit_application after the cancellation",
         lambda: cms.submit_application(bed.application, run.key("intake-after-cancel")))
    return "a cancelled card frees the holder for a new application"


def check_unreachable(run: _Run) -> str:
    if run.bed.unreachable is None:
        raise _Skip("no unreachable adapter in the bed")
    cms, ready = run.adapter(unreachable=True), run.bed.ready
    record = ReturnRecord(card_number="A00000000", id_number=ready, name="-",
                          issue_date="20250101", expiry_date="20350101",
                          card_id_code=run.bed.card_id_code, atr=run.bed.atr,
                          bank_account=run.bed.bank_account, batch="-")
    calls: dict[str, Callable[[], Any]] = {
        "fetch": lambda: cms.fetch(ready),
        "claim": lambda: cms.claim(ready),
        "submit_return": lambda: cms.submit_return(record, run.key("unreachable")),
        "report_failure": lambda: cms.report_failure(ready, "-", run.key("unreachable")),
    }
    for name, call in calls.items():
        started = time.monotonic()
        exc = raises(CmsUnavailable, f"{name} with the CMS unreachable", run.bed, call)
        if exc.retryable is not True:
            raise CheckFailed(f"{name}: CmsUnavailable with retryable {exc.retryable!r}; the "
                              "outbox would give up on a return it must keep retrying")
        if time.monotonic() - started > 30:
            raise CheckFailed(f"{name} took over 30 s to report an unreachable CMS")
    return "with the CMS unreachable every call raises CmsUnavailable (retryable)"


def check_errors(run: _Run) -> str:
    if not run.errors:
        raise CheckFailed("the adapter raised no error at all during the run")
    bad = []
    for method, exc in run.errors:
        problems = error_problems(exc, run.bed)
        if problems:
            bad.append(f"{method}: {'; '.join(problems)} ({_describe(exc)})")
    if bad:
        raise CheckFailed(f"{len(bad)} of {len(run.errors)} errors are not as the station "
                          "needs: " + " | ".join(bad[:3]))
    codes = sorted({exc.code for _, exc in run.errors if isinstance(exc, CmsError)})
    return (f"all {len(run.errors)} errors raised are CmsErrors with a port code, "
            f"\"cause — remedy\" and no full ID number ({', '.join(codes)})")


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[_Run], str]
    summary: str
    needs: tuple[str, ...] = ()


#: Every check, in the order they must run (each may rely on the state the earlier ones left).
CHECKS: tuple[Check, ...] = (
    Check("port", check_port, "the factory makes an object implementing the Cms port"),
    Check("fetch", check_fetch, "fetch(ready) returns its application, complete, with photo",
          ("port",)),
    Check("fetch_unknown", check_unknown, "unknown ID number -> ApplicationNotFound", ("port",)),
    Check("not_marked", check_not_marked, "no instant-issuance mark -> "
          "NotMarkedForInstantIssuance", ("port",)),
    Check("claim_twice", check_claim_twice, "claiming again from the same station is harmless",
          ("fetch",)),
    Check("claim_elsewhere", check_claim_elsewhere, "a claim from another station -> "
          "ClaimedElsewhere", ("claim_twice",)),
    Check("certificates", check_certificates, "GetCA for the claimed card, the same again",
          ("claim_twice",)),
    Check("return_idempotent", check_return_idempotent, "the same return under the same key "
          "is acknowledged again", ("claim_twice",)),
    Check("return_conflict", check_return_conflict, "a different record under the same key "
          "-> ReturnConflict", ("return_idempotent",)),
    Check("claim_made", check_claim_made, "claim after the return -> AlreadyMade",
          ("return_idempotent",)),
    Check("restore_made", check_restore_made, "restore makes a made application claimable",
          ("return_idempotent",)),
    Check("failure_restore", check_failure_restore, "failure report -> RestoreRequired; "
          "restore -> claimable", ("port",)),
    Check("restore_releases", check_restore_releases, "restore releases the claim",
          ("failure_restore",)),
    Check("temporary_record", check_temporary_record, "temporary card: check, record, get",
          ("port",)),
    Check("temporary_outstanding", check_temporary_outstanding, "temporary card: one per "
          "holder -> TemporaryCardOutstanding", ("temporary_record",)),
    Check("temporary_recall", check_temporary_recall, "temporary card: recall",
          ("temporary_record",)),
    Check("temporary_void", check_temporary_void, "temporary card: void",
          ("temporary_recall",)),
    Check("temporary_unknown", check_temporary_unknown, "temporary card: unknown code -> "
          "TemporaryCardUnknown", ("port",)),
    Check("card_life_port", check_card_life_port, "the adapter implements CmsCardLife",
          ("port",)),
    Check("intake_submit", check_intake_submit, "新增申请 once per holder -> HolderHasCard; "
          "mark needs the fee", ("card_life_port",)),
    Check("hand_over", check_hand_over, "领卡启用 only of the card made, no temporary card out",
          ("intake_submit",)),
    Check("loss", check_loss, "挂失 (temporary, formal), 解挂; replacement needs the formal "
          "report", ("hand_over",)),
    Check("replacement", check_replacement, "补换卡 after the formal loss report",
          ("loss",)),
    Check("cancel", check_cancel, "注销 frees the holder for a new application",
          ("replacement",)),
    Check("unreachable", check_unreachable, "unreachable CMS -> CmsUnavailable, retryable"),
    Check("errors", check_errors, "every error: CmsError, port code, cause — remedy, no full "
          "ID number"),
)

CHECK_NAMES: tuple[str, ...] = tuple(c.name for c in CHECKS)


def run_checks(bed: ConformanceBed,
               on_result: Callable[[CheckResult], None] | None = None) -> list[CheckResult]:
    """Run every check in order against the bed; `on_result` sees each result as it comes."""
    run = _Run(bed)
    results: list[CheckResult] = []
    outcome: dict[str, Status] = {}
    for check in CHECKS:
        started = time.monotonic()
        failed_needs = [n for n in check.needs if outcome.get(n) == "fail"]
        status: Status
        if failed_needs:
            status, message = "skip", f"not run: {', '.join(failed_needs)} failed"
        else:
            try:
                status, message = "pass", check.run(run)
            except _Skip as exc:
                status, message = "skip", str(exc)
            except CheckFailed as exc:
                status, message = "fail", str(exc)
            except Exception as exc:  # the kit's own guard: an adapter bug is a failure
                status, message = "fail", f"unexpected {_describe(exc)}"
        # not run for a failed prerequisite counts as failed for the checks after it
        outcome[check.name] = "fail" if failed_needs else status
        result = CheckResult(check.name, status, mask(message),
                             round(time.monotonic() - started, 3))
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def summarize(results: list[CheckResult]) -> dict[str, Any]:
    """The run in one JSON-ready object: ok when no check failed (skipped ones are listed)."""
    failed = [r.name for r in results if r.status == "fail"]
    not_run = [r.name for r in results if r.status == "skip" and r.message.startswith("not run")]
    skipped = [r.name for r in results if r.status == "skip"]
    return {
        "ok": not failed and not not_run,  # not run: only after a failure, but be explicit
        "checks": len(results),
        "passed": sum(r.status == "pass" for r in results),
        "failed": failed,
        "skipped": skipped,
        "seconds": round(sum(r.seconds for r in results), 3),
    }


__all__ = [
    "CHECKS",
    "CHECK_NAMES",
    "CardLifeBed",
    "Check",
    "CheckFailed",
    "CheckResult",
    "ConformanceBed",
    "TemporaryCardBed",
    "error_problems",
    "mask",
    "run_checks",
    "summarize",
]
