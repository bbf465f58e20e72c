"""Lanes (issue 13): several printers, each with its own chip encoder, making cards from one
queue. Real PC/SC (pcscd + vpcd: the second and third encoders are the slots of
simulators/vpcd/lanes.conf), real sockets to the printer simulators and the CMS.

- three lanes make 30 cards, each card once, each job recording its printer;
- a printer that fails while feeding (its card's chip not touched) hands its job to another
  printer, audited as the rule `lane-handoff`, and stays out until it is fixed;
- a printer that jams after the chip write keeps its job (the card is inside it) while the
  others go on making cards; the job is finished there once the operator puts the card back;
- `serve` with three printers SIGKILLed mid-batch and restarted: every card DONE once, one
  return each, no chip item written twice.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cardstation.config import Config, ConfigError
from cardstation.personalization.journal import Issuance, State
from cardstation.simulated import WiredSimulatedStation
from cardstation.simulators.printer.cards import SimPosition
from cardstation.simulators.station import ENCODER_READERS
from tests.support.pcsc import PSAM_READER

CARDS = 30


# -- configuration -------------------------------------------------------------------------
def test_without_printers_tables_the_station_has_one_lane_named_1() -> None:
    config = Config()
    (lane,) = config.lanes
    assert (lane.name, lane.device, lane.encoder) == ("1", config.printer.device,
                                                      config.readers.encoder)


def test_printers_tables_are_checked_and_every_problem_named() -> None:
    good = Config().with_values(printers=[
        {"name": "A", "device": "socket://127.0.0.1:9100", "encoder": "Enc A"},
        {"name": "B", "device": "socket://127.0.0.1:9101", "encoder": "Enc B",
         "poll_interval": 0.5}])
    assert [(lane.name, lane.encoder, lane.poll_interval) for lane in good.lanes] == [
        ("A", "Enc A", 1.0), ("B", "Enc B", 0.5)]
    with pytest.raises(ConfigError) as refused:
        Config().with_values(printers=[
            {"name": "A", "device": "socket://127.0.0.1:9100", "encoder": "Enc"},
            {"name": "A", "device": "", "encoder": "Enc", "colour": "red"},
            {"name": "C d", "device": "usb://0d16:030a", "encoder": Config().readers.psam,
             "model": "nope"}])
    text = str(refused.value)
    for expected in ("#2 unknown key(s) ['colour']", "'A' is used twice", "(A) needs device",
                     "another printer's too", "must be letters, digits", "the PSAM's",
                     "model 'nope' is not known"):
        assert expected in text, expected
    with pytest.raises(ConfigError, match="at most 4"):
        Config().with_values(printers=[
            {"name": str(i), "device": f"socket://127.0.0.1:{9100 + i}", "encoder": f"E{i}"}
            for i in range(5)])
    with pytest.raises(ConfigError, match=r"\[\[printers\]\]"):
        Config().with_values(printers={"name": "A"})


# -- a station with three printers -----------------------------------------------------------
class AuditRecorder:
    """Where the runtime writes its automatic rules (the audit log's own tests cover the
    file); the tests read which rule moved which job."""

    def __init__(self) -> None:
        self.rules: list[tuple[str, str]] = []

    def append(self, **record: Any) -> None:
        self.rules.append((record["method"], record["issuance_id"]))


@pytest.fixture
def three(pcsc_context: Any, tmp_path: Path) -> Iterator[WiredSimulatedStation]:
    readers = pcsc_context.readers()
    missing = [r for r in ENCODER_READERS if r not in readers]
    assert not missing, f"no reader {missing}: `make setup` installs simulators/vpcd/lanes.conf"
    for reader in (*ENCODER_READERS, PSAM_READER):
        pcsc_context.wait_for_removal(reader, timeout=5)
    sim = WiredSimulatedStation(tmp_path, extra_applicants=CARDS + 10, printers=3,
                                printed_faces=False).start()
    pcsc_context.wait_for_card(PSAM_READER, timeout=5)
    try:
        yield sim
    finally:
        sim.stop()
        for reader in (*ENCODER_READERS, PSAM_READER):
            pcsc_context.wait_for_removal(reader, timeout=10)


@pytest.fixture
def runtime(three: WiredSimulatedStation) -> Iterator[Any]:
    from cardstation.server.runtime import StationRuntime
    from cardstation.station import build_station

    config = three.config()
    rt = StationRuntime(lambda **kw: build_station(config, **kw), monitor_interval=0.2,
                        audit=AuditRecorder(), lane_bench_s=30.0)
    rt.start()
    try:
        yield rt
    finally:
        rt.stop()


def create(rt: Any, id_number: str) -> Issuance:
    """What CreateIssuance does: admission, the CMS claim, then the queue."""
    issuance, _created = rt.pipeline.open(id_number, admission=rt.admission)
    rt.enqueue(issuance.id)
    return issuance


def wait_for(what: Callable[[], Any], timeout: float, why: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out: {why}")


def settled_states(rt: Any, ids: list[str]) -> dict[str, Issuance]:
    jobs = {i: rt.journal.get(i) for i in ids}
    return jobs if all(j.state in (State.DONE, State.REJECTED, State.FAILED)
                       for j in jobs.values()) else {}


def printer(sim: WiredSimulatedStation, name: str) -> Any:
    return next(p for p in sim.printers if p.name == name).model


def test_three_lanes_make_30_cards_each_once(three, runtime) -> None:
    for index in range(3):
        three.load_blank(12, printer=index)
    ids = [create(runtime, id_number).id for id_number in three.cms.samples["ready"][:CARDS]]
    jobs = wait_for(lambda: settled_states(runtime, ids), 240, "30 cards on three printers")
    assert Counter(j.state for j in jobs.values()) == {State.DONE: CARDS}
    lanes = Counter(j.data["lane"] for j in jobs.values())
    assert set(lanes) == {"1", "2", "3"}, lanes  # every printer took jobs
    for name, count in lanes.items():  # and printed exactly the faces of its jobs
        assert len(printer(three, name).print_log) == count
    returns = Counter(r["record"]["id_number"] for r in three.cms.ledger(photos=False)["returns"])
    assert len(returns) == CARDS and set(returns.values()) == {1}
    assert all(n == 1 for chip in three.chips for n in chip.writes.values())
    picture = runtime.snapshot
    assert [lane.name for lane in picture.lanes] == ["1", "2", "3"]
    assert all(not lane.problems for lane in picture.lanes)


def test_a_printer_failing_at_the_feed_hands_its_job_to_another(three, runtime) -> None:
    for index in range(3):
        three.load_blank(2, printer=index)
    # only printer 2 may feed; its feeder jams the next card (no alert until it happens)
    printer(three, "1").inject("cover_open")
    printer(three, "3").inject("cover_open")
    printer(three, "2").inject("jam", at="feeder")
    wait_for(lambda: [lane.name for lane in runtime.lanes
                      if runtime.lane_blocker(lane) is None] == ["2"], 10, "only lane 2 ready")
    job = create(runtime, three.cms.samples["ready"][0])
    rule = ("rule:lane-handoff", job.id)
    wait_for(lambda: rule in runtime.audit.rules, 30, "the hand-off")
    # back in the queue, waiting for a printer, the chip of the jammed card untouched
    moved = runtime.journal.get(job.id)
    assert moved.state is State.PREVIEWED and runtime.is_queued(job.id)
    handed = [e for e in runtime.journal.events(job.id) if e.from_state is State.FAILED]
    assert [e.to_state for e in handed] == [State.PREVIEWED]
    assert "printer 2 could not feed the card" in handed[0].reason
    assert not any(chip.writes for chip in three.chips)
    problem = runtime.lane_blocker(runtime.lane("2"))
    assert problem is not None and problem.code.startswith("PRINTER_")
    # the operator closes printer 3's cover: that printer makes the card
    printer(three, "3").clear("cover_open")
    done = wait_for(lambda: (j := runtime.journal.get(job.id)).state is State.DONE and j,
                    60, "the card made on printer 3")
    assert done.data["lane"] == "3"
    assert len(printer(three, "2").print_log) == 0 and len(printer(three, "3").print_log) == 1
    assert runtime.audit.rules.count(rule) == 1
    # printer 2 stays out of the draw until its jam is cleared
    assert runtime.lane_blocker(runtime.lane("2")) is not None


def test_a_printer_jammed_after_the_chip_write_keeps_its_job(three, runtime) -> None:
    for index in range(3):
        three.load_blank(3, printer=index)
    printer(three, "1").inject("cover_open")
    printer(three, "2").inject("cover_open")
    jammed = printer(three, "3")
    jammed.inject("jam", at="print")
    wait_for(lambda: [lane.name for lane in runtime.lanes
                      if runtime.lane_blocker(lane) is None] == ["3"], 10, "only lane 3 ready")
    first, second, third = three.cms.samples["ready"][:3]
    job = create(runtime, first)
    failed = wait_for(lambda: (j := runtime.journal.get(job.id)).state is State.FAILED and j,
                      60, "the jam at the print")
    assert failed.data["reason_code"] == "PRINTER_CARD_JAM" and failed.data["lane"] == "3"
    assert ("rule:lane-handoff", job.id) not in runtime.audit.rules  # the card is inside
    # the other printers go on: printer 3 is held by the failed job, they are not
    printer(three, "1").clear("cover_open")
    printer(three, "2").clear("cover_open")
    held = wait_for(lambda: runtime.lane_blocker(runtime.lane("3")), 10, "lane 3 held")
    assert held.code in ("PRINTER_CARD_JAM", "PRINTER_HELD_BY_FAILED_JOB")
    wait_for(lambda: runtime.admission() is None, 10, "the station ready on printers 1, 2")
    others = [create(runtime, second).id, create(runtime, third).id]
    made = wait_for(lambda: settled_states(runtime, others), 60, "cards on printers 1 and 2")
    assert {j.state for j in made.values()} == {State.DONE}
    assert {j.data["lane"] for j in made.values()} <= {"1", "2"}
    # the operator pulls the jammed card, resets printer 3 and puts the card back in its slot
    jammed.clear_jam()
    jammed.reset()
    with jammed._locked():
        card = jammed.reject_box.pop()
        card.position = SimPosition.INPUT
        jammed.input_cards.appendleft(card)
    assert runtime.enqueue(job.id, "resume") is not None
    done = wait_for(lambda: (j := runtime.journal.get(job.id)).state is State.DONE and j,
                    60, "the jammed job finished on its printer")
    assert done.data["lane"] == "3"
    assert len(jammed.print_log) == 1  # printed once, on printer 3
    assert all(n == 1 for chip in three.chips for n in chip.writes.values())


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_sigkill_serve_with_three_printers_loses_and_doubles_nothing(pcsc_context,
                                                                     tmp_path) -> None:
    from cardstation.reliability import drill

    for reader in (*ENCODER_READERS, PSAM_READER):
        pcsc_context.wait_for_removal(reader, timeout=5)
    try:
        result = drill.run_drill(6, tmp_path, seed=20261202, cards=CARDS, fault_rate=0.3,
                                 printers=3)
    finally:
        for reader in (*ENCODER_READERS, PSAM_READER):
            pcsc_context.wait_for_removal(reader, timeout=10)
    figures = {f["name"]: f["value"] for f in result.figures()}
    assert figures["reliability.drill_kills"] >= 6
    assert figures["reliability.drill_lost_returns"] == 0
    assert figures["reliability.drill_duplicate_returns"] == 0
    assert figures["reliability.drill_double_prints"] == 0
    assert figures["reliability.drill_double_chip_writes"] == 0
    assert figures["reliability.drill_unfinished_jobs"] == 0, result.problems
    assert len(result.prints_by_printer) >= 2, result.prints_by_printer  # lanes shared work
