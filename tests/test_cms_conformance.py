"""The CMS conformance kit: the reference client passes it against the simulator, and adapters
that break the port's contract fail the very checks that describe it (and only those, or the
ones after them that the kit says were not run)."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from cardstation.cli import main
from cardstation.personalization.cms import CmsClient
from cardstation.personalization.model import Application, ReturnRecord
from cardstation.personalization.ports.cms import (
    ClaimedElsewhere,
    CmsError,
    CmsSettings,
    CmsUnavailable,
)
from cardstation.personalization.ports.cms_conformance import (
    CHECK_NAMES,
    CheckResult,
    ConformanceBed,
    run_checks,
    summarize,
)
from cardstation.registries import CMS_KINDS, register_cms_kind
from cardstation.simulators.cms import CmsSimulator
from cardstation.simulators.cms.conformance import SimulatedApplicants, conformance_applicants

STATION = "410700-W01"
FULL_ID = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dX](?![0-9A-Za-z])")
KIT = Path(__file__).resolve().parents[1] / "personalization/ports/cms_conformance.py"
DEAD_URL = "http://127.0.0.1:9"  # the discard port: nothing listens on loopback


@pytest.fixture
def sim() -> Iterator[CmsSimulator]:
    with CmsSimulator(seed=5) as simulator:
        simulator.start()
        yield simulator


@pytest.fixture
def people(sim: CmsSimulator) -> SimulatedApplicants:
    return conformance_applicants(sim)


def bed_for(sim: CmsSimulator, people: SimulatedApplicants,
            adapter: type[CmsClient] = CmsClient, **changes: Any) -> ConformanceBed:
    def factory(url: str) -> Callable[[str], CmsClient]:
        return lambda station: adapter(url, station, connect_timeout=1.0, read_timeout=3.0)

    values: dict[str, Any] = {
        "factory": factory(sim.base_url), "station": STATION, "ready": people.ready,
        "ready2": people.ready2, "not_marked": people.not_marked, "unknown": people.unknown,
        "unreachable": factory(DEAD_URL), "temporary": people.temporary,
        "card_life": people.card_life,
        "certificate_public_key": people.certificate_public_key}
    return ConformanceBed(**{**values, **changes})


def by_status(results: list[CheckResult], status: str) -> set[str]:
    return {r.name for r in results if r.status == status}


def assert_no_full_id(results: list[CheckResult]) -> None:
    for result in results:
        assert not FULL_ID.search(result.message), result


# ---- the reference client passes ---------------------------------------------------------


def test_reference_client_passes_every_check(sim: CmsSimulator,
                                             people: SimulatedApplicants) -> None:
    results = run_checks(bed_for(sim, people))
    assert [r.name for r in results] == list(CHECK_NAMES)
    assert [(r.name, r.status) for r in results if r.status != "pass"] == []
    summary = summarize(results)
    assert summary["ok"] and summary["passed"] == len(CHECK_NAMES) == summary["checks"]
    assert_no_full_id(results)
    ledger = sim.ledger(photos=False)
    # the run leaves both ready applicants ready, the return and the conflict as evidence
    assert ledger["applications"][people.ready]["status"] == "ready"
    assert ledger["applications"][people.ready2]["status"] == "ready"
    assert ledger["claims"] == {}
    newcomer = people.card_life.application.id_number
    # the card-life holder: made, replaced, made again, cancelled, and applied again
    assert [r["id_number"] for r in ledger["returns"]] == [people.ready, newcomer, newcomer]
    life = ledger["applications"][newcomer]
    assert life["status"] == "not_marked" and life["card_state"] is None
    assert [c["state"] for c in life["previous_cards"]] == ["replaced", "cancelled"]
    assert [c["kind"] for c in ledger["conflicts"]] == ["return"]
    assert [f["id_number"] for f in ledger["failures"]] == [people.ready2]


def test_the_kit_runs_again_against_the_same_applicants(sim: CmsSimulator,
                                                        people: SimulatedApplicants) -> None:
    assert summarize(run_checks(bed_for(sim, people)))["ok"]
    fresh = conformance_applicants(sim)
    again = run_checks(bed_for(sim, people, temporary=fresh.temporary,
                               card_life=fresh.card_life))
    assert by_status(again, "pass") == set(CHECK_NAMES)


def test_optional_parts_are_skipped_without_their_data(sim: CmsSimulator,
                                                       people: SimulatedApplicants) -> None:
    results = run_checks(bed_for(sim, people, temporary=None, certificate_public_key=None,
                                 unreachable=None, card_life=None))
    skipped = by_status(results, "skip")
    assert skipped == {"certificates", "temporary_record", "temporary_outstanding",
                       "temporary_recall", "temporary_void", "temporary_unknown", "unreachable",
                       "card_life_port", "intake_submit", "hand_over", "loss", "replacement",
                       "cancel"}
    assert by_status(results, "fail") == set()
    assert summarize(results)["ok"] is True


def test_a_bed_needs_four_different_applicants(sim: CmsSimulator,
                                               people: SimulatedApplicants) -> None:
    with pytest.raises(ValueError, match="four different"):
        bed_for(sim, people, ready2=people.ready)
    with pytest.raises(ValueError, match="other_station"):
        bed_for(sim, people, other_station=STATION)


# ---- adapters that break the contract fail the checks that say so ------------------------


class BareException(CmsClient):
    """Raises a plain Exception for an unknown applicant instead of ApplicationNotFound."""

    def fetch(self, id_number: str) -> Application:
        try:
            return super().fetch(id_number)
        except CmsError as exc:
            if exc.code == "APPLICATION_NOT_FOUND":
                raise Exception("no such application") from None
            raise


class WrongApplication(CmsClient):
    """Answers with the next applicant in the ledger: the wrong person's data on the card."""

    swap: ClassVar[dict[str, str]] = {}

    def fetch(self, id_number: str) -> Application:
        return super().fetch(self.swap.get(id_number, id_number))


class LeakyMessages(CmsClient):
    """Puts the full ID number into every error message."""

    def claim(self, id_number: str) -> None:
        try:
            super().claim(id_number)
        except CmsError as exc:
            exc.args = (f"{exc} [{id_number}]",)
            raise

    def fetch(self, id_number: str) -> Application:
        try:
            return super().fetch(id_number)
        except CmsError as exc:
            exc.args = (f"{exc} [{id_number}]",)
            raise


class NoRemedy(CmsClient):
    """Its errors carry only a cause: an operator is not told what to do."""

    def claim(self, id_number: str) -> None:
        try:
            super().claim(id_number)
        except CmsError as exc:
            exc.args = (str(exc).partition(" — ")[0],)
            raise


class UnavailableNotRetryable(CmsClient):
    """Reports an unreachable CMS as final: the outbox would drop a return it must keep."""

    def _unavailable(self, reason: str, cause: str, op: str,
                     status: int | None = None) -> CmsUnavailable:
        exc = super()._unavailable(reason, cause, op, status)
        exc.retryable = False
        return exc


class SwallowsClaims(CmsClient):
    """Treats another station's claim as success: two stations would make the same card."""

    def claim(self, id_number: str) -> None:
        try:
            super().claim(id_number)
        except ClaimedElsewhere:
            pass


class NewAckEachTime(CmsClient):
    """Answers a repeated return with a fresh acknowledgement, undocumented."""

    count = 0

    def submit_return(self, record: ReturnRecord, idempotency_key: str) -> str:
        NewAckEachTime.count += 1
        return f"{super().submit_return(record, idempotency_key)}-{NewAckEachTime.count}"


class ForgetsFailures(CmsClient):
    """Never sends the failure report: the CMS still thinks the card is being made."""

    def report_failure(self, id_number: str, reason: str, idempotency_key: str) -> None:
        return None


# the checks that look at an error message, as a leaky or remedy-less adapter fails them
MESSAGE_CHECKS = {"fetch_unknown", "not_marked", "claim_elsewhere", "claim_made",
                  "failure_restore", "unreachable", "errors"}
AFTER_RETURN = {"return_conflict", "claim_made", "restore_made"}


@pytest.mark.parametrize(("adapter", "failed", "not_run", "says"), [
    (BareException, {"fetch_unknown", "errors"}, set(), "got Exception"),
    (WrongApplication, {"fetch"}, {"claim_twice", "claim_elsewhere", "certificates",
                                   "return_idempotent", *AFTER_RETURN},
     "returned the application of"),
    (LeakyMessages, MESSAGE_CHECKS, {"restore_releases"}, "contains a full ID number"),
    (NoRemedy, MESSAGE_CHECKS, {"restore_releases"}, "not \"cause — remedy\""),
    (UnavailableNotRetryable, {"unreachable"}, set(), "retryable False"),
    (SwallowsClaims, {"claim_elsewhere"}, set(), "but it succeeded"),
    (NewAckEachTime, {"return_idempotent"}, AFTER_RETURN, "the repeat was acknowledged"),
    # a failure report that is never sent fails where it matters, and where the CMS is down
    (ForgetsFailures, {"failure_restore", "unreachable"}, {"restore_releases"},
     "expected RestoreRequired"),
], ids=lambda value: value.__name__ if isinstance(value, type) else "")
def test_a_wrong_adapter_fails_the_checks_it_breaks(
        sim: CmsSimulator, people: SimulatedApplicants, adapter: type[CmsClient],
        failed: set[str], not_run: set[str], says: str) -> None:
    WrongApplication.swap = {people.ready: people.ready2}
    results = run_checks(bed_for(sim, people, adapter))
    assert by_status(results, "fail") == failed
    assert {r.name for r in results if r.message.startswith("not run")} == not_run
    assert by_status(results, "pass") == set(CHECK_NAMES) - failed - not_run
    first = next(r for r in results if r.status == "fail")
    assert says in first.message, first
    assert_no_full_id(results)  # the kit masks what it quotes from a leaky adapter
    assert summarize(results)["ok"] is False


def test_a_factory_that_is_not_a_cms_fails_the_port_check(sim: CmsSimulator,
                                                          people: SimulatedApplicants) -> None:
    class HalfAdapter:
        def fetch(self, id_number: str) -> Application:
            raise NotImplementedError

    results = run_checks(bed_for(sim, people, factory=lambda station: HalfAdapter(),
                                 unreachable=None))
    port = results[0]
    assert (port.name, port.status) == ("port", "fail")
    assert "missing: claim, submit_return" in port.message
    assert by_status(results, "fail") == {"port", "errors"}
    # every check needing the port was not run; the kit still ends with a summary
    assert by_status(results, "pass") == set()


def test_the_kit_imports_only_the_port_the_model_and_the_standard_library() -> None:
    allowed = {"cardstation.personalization.ports.cms", "cardstation.personalization.model",
               "cardstation.personalization.cert_assumptions", "__future__"}
    modules = set()
    for node in ast.walk(ast.parse(KIT.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            modules.add(node.module or "")
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
    outside = {m for m in modules - allowed if m.split(".")[0] == "cardstation"}
    assert outside == set()
    assert {m.split(".")[0] for m in modules - allowed} <= {
        "re", "secrets", "time", "collections", "dataclasses", "typing"}


# ---- the command ---------------------------------------------------------------------------


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    code = main(["cms", "conformance", *args])
    out, err = capsys.readouterr()
    assert not FULL_ID.search(out) and not FULL_ID.search(err), (out, err)
    return code, out.splitlines(), err


def test_simulate_shows_the_kit_passing(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, err = run_cli(capsys, "--simulate", "--seed", "2")
    assert code == 0, (lines, err)
    assert [line.split()[:2] for line in lines[:-1]] == [["PASS", n] for n in CHECK_NAMES]
    summary = json.loads(lines[-1])
    assert summary["ok"] is True and summary["passed"] == len(CHECK_NAMES)
    assert "a CMS simulator at http://127.0.0.1:" in err


def test_against_a_running_cms_with_the_wrong_applicant(
        capsys: pytest.CaptureFixture[str], sim: CmsSimulator,
        people: SimulatedApplicants) -> None:
    code, lines, _ = run_cli(
        capsys, "--url", sim.base_url, "--station", STATION, "--ready", people.not_marked,
        "--ready2", people.ready2, "--not-marked", people.ready, "--unknown", people.unknown)
    assert code == 1
    status = {line.split()[1]: line.split()[0] for line in lines[:-1]}
    assert status["fetch"] == "FAIL" and status["not_marked"] == "FAIL"
    assert status["failure_restore"] == "PASS" and status["temporary_record"] == "SKIP"
    summary = json.loads(lines[-1])
    assert summary["ok"] is False and "fetch" in summary["failed"]


def test_a_registered_kind_is_run_by_name(capsys: pytest.CaptureFixture[str],
                                          sim: CmsSimulator,
                                          people: SimulatedApplicants) -> None:
    register_cms_kind("conformance-leaky", f"{__name__}:leaky_from_settings")
    try:
        code, lines, _ = run_cli(
            capsys, "--kind", "conformance-leaky", "--url", sim.base_url, "--station",
            STATION, "--ready", people.ready, "--ready2", people.ready2, "--not-marked",
            people.not_marked, "--unknown", people.unknown)
    finally:
        CMS_KINDS.pop("conformance-leaky")
    assert code == 1
    assert "errors" in json.loads(lines[-1])["failed"]


def leaky_from_settings(settings: CmsSettings) -> CmsClient:
    return LeakyMessages(settings.url, settings.station_id)


@pytest.mark.parametrize(("args", "says"), [
    (["--kind", "no-such-kind", "--url", "http://127.0.0.1:1", "--station", "S"],
     "no CMS kind 'no-such-kind'; known: reference-http"),
    (["--url", "ftp://cms", "--station", "S", "--ready", "1"], "cannot be made"),
    (["--url", "http://127.0.0.1:1", "--station", "S", "--ready", "1"],
     "--ready2 --not-marked --unknown"),
    (["--url", "http://127.0.0.1:1"], "give --url and --station"),
    (["--simulate", "--public-key", "zz"], "--public-key is not hex"),
    (["--simulate", "--temporary-card", "X"], "need all five options"),
    (["--simulate", "--option", "x"], "is not KEY=VALUE"),
    (["--simulate", "--option", "x=1"], "takes no [cms.options]"),
])
def test_usage_errors_say_what_to_give(capsys: pytest.CaptureFixture[str], args: list[str],
                                       says: str) -> None:
    code, lines, err = run_cli(capsys, *args)
    assert code == 2 and lines == []
    assert says in err and " — " in err
