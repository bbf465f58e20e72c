"""The issuance pipeline on every simulator through the real pcscd stack (issue 5 scenarios)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PIL import Image, ImageChops, ImageStat

from cardstation.personalization import pipeline as pipeline_module
from cardstation.personalization.face import FaceData, render_print
from cardstation.personalization.journal import Journal, State
from cardstation.personalization.model import Application
from cardstation.personalization.pipeline import ReprintRefused
from cardstation.simulators.cms.applicants import EXAMPLE_ID_NUMBER
from cardstation.station import Station, build_station
from tests.support.pcsc import DESK_READER
from tests.support.world import ledger_returns, settled

pytestmark = pytest.mark.pcscd


@pytest.fixture
def station(world) -> Iterator[Station]:
    s = build_station(world.config())
    yield s
    s.close()


def make(station: Station, id_number: str):
    return settled(station, station.pipeline.issue(id_number))


def face_difference(png: str, face: FaceData) -> float:
    printed = Image.open(png).convert("L")
    expected = render_print(face).composite().convert("L")  # the one side printed
    return sum(ImageStat.Stat(ImageChops.difference(printed, expected)).mean)


def test_a_card_is_made_and_returned_once(world, station) -> None:
    (chip,) = world.load_blank()
    issuance = station.pipeline.issue(EXAMPLE_ID_NUMBER)
    # ejected, but not DONE until the CMS has the return: "made, do not hand over"
    assert issuance.state is State.EJECTED and issuance.data["reason_code"] == "RETURN_PENDING"
    issuance = settled(station, issuance)
    assert issuance.state is State.DONE, issuance.reason
    assert station.drain_returns(10) == 0
    (ret,) = ledger_returns(world, EXAMPLE_ID_NUMBER)
    record = ret["record"]
    assert record["bank_account"] == chip.card.pan
    assert record["card_id_code"] == chip.card.card_identification_code.hex().upper()
    assert record["atr"] == chip.card.atr.hex().upper()
    assert max(chip.writes.values()) == 1  # every item written once
    assert len(world.model.output_hopper) == 1
    # the printed face is the one rendered from the chip's data, not anything else
    chip_data = station.journal.get(issuance.id).data["chip"]
    (printed,) = world.model.print_log
    front = next(side.png for side in printed.sides if side.physical_side == "front")
    app = station.cms.fetch(EXAMPLE_ID_NUMBER)
    same = FaceData(chip_data["name"], chip_data["id_number"], chip_data["card_number"],
                    app.issue_date, app.bank_name, app.photo)
    other = FaceData("王二", "11010519491231003X", chip_data["card_number"], app.issue_date,
                     app.bank_name, app.photo)
    assert chip_data["id_number"] == EXAMPLE_ID_NUMBER
    assert face_difference(str(front), same) < face_difference(str(front), other) / 2


def test_the_face_is_rendered_while_the_return_commits_and_printed_only_if_it_is_the_chips(
        world, station, monkeypatch) -> None:
    """Per-card software time (issue 18): the printer's count is journaled with RETURN_QUEUED
    (printing has no commit of its own), and the face is rendered on another thread while
    VERIFIED and RETURN_QUEUED commit. The print uses that render only when it is the face the
    chip's read-back gives; a stale one is rendered again."""
    from cardstation.drivers.hiti import printer as driver
    from cardstation.personalization.printers import hiti as adapter

    renders = {"ahead": 0, "at_print": 0}

    def counted(where, render):
        def run(*args, **kwargs):
            renders[where] += 1
            return render(*args, **kwargs)
        return run

    monkeypatch.setattr(adapter, "render_panels", counted("ahead", adapter.render_panels))
    monkeypatch.setattr(driver, "render_panels", counted("at_print", driver.render_panels))
    commits: list[State] = []
    station.pipeline.after_commit = commits.append
    world.load_blank(2)
    first = make(station, EXAMPLE_ID_NUMBER)
    assert first.state is State.DONE and renders == {"ahead": 1, "at_print": 0}
    events = station.journal.events(first.id)
    queued = next(e for e in events if e.to_state is State.RETURN_QUEUED)
    assert queued.from_state is State.VERIFIED and "print_count_before" in queued.data
    assert not [e for e in events if e.reason == "printing"]  # no commit of its own
    assert commits.count(State.VERIFIED) == 1 and commits.count(State.RETURN_QUEUED) == 1

    # a render ahead of another face (as if the chip said otherwise) is not printed
    render_ahead = station.pipeline._render_ahead

    def stale(issuance, chip):
        render_ahead(issuance, {**chip, "name": "王二"})

    monkeypatch.setattr(station.pipeline, "_render_ahead", stale)
    second_id = next(n for n in world.cms.samples["ready"] if n != EXAMPLE_ID_NUMBER)
    second = make(station, second_id)
    assert second.state is State.DONE and renders == {"ahead": 2, "at_print": 1}
    chip_data = station.journal.get(second.id).data["chip"]
    front = next(side.png for side in world.model.print_log[-1].sides
                 if side.physical_side == "front")
    app = station.cms.fetch(second_id)
    faces = {name: FaceData(name, chip_data["id_number"], chip_data["card_number"],
                            app.issue_date, app.bank_name, app.photo,
                            chip_data["bank_account"])
             for name in (chip_data["name"], "王二")}
    assert face_difference(str(front), faces[chip_data["name"]]) < face_difference(
        str(front), faces["王二"]) / 2


def test_a_preview_that_cannot_be_saved_stops_the_job_before_the_chip_is_touched(
        world, station) -> None:
    """The preview is drawn while the card is fed; a file error there still ends the job in
    a named state before the chip is written, and a resume draws it again."""
    (chip,) = world.load_blank()
    previews = station.pipeline.data_dir / "previews"
    previews.parent.mkdir(parents=True, exist_ok=True)
    previews.write_text("a file where the previews folder goes")
    issuance = station.pipeline.issue(EXAMPLE_ID_NUMBER)
    assert issuance.state is State.FAILED and issuance.failed_from is State.PREVIEWED
    assert issuance.data["reason_code"] in pipeline_module.STORAGE_REASONS
    assert not chip.writes  # nothing written to the card at the contacts
    previews.unlink()
    done = settled(station, station.pipeline.resume(issuance.id))
    assert done.state is State.DONE, done.reason
    assert Image.open(done.data["preview"]).format == "JPEG"
    assert len(world.model.output_hopper) == 1 and not world.model.reject_box


def test_a_card_parses_its_application_once_and_previews_as_a_jpeg(world, station,
                                                                   monkeypatch) -> None:
    """Per-card software time (issue 18): the five steps that need the application share one
    parse; the preview file is a JPEG (cheap to encode), readable, the holder's only."""
    parsed: list[str] = []

    class Counting:
        @staticmethod
        def from_dict(data: dict) -> Application:
            parsed.append(data["id_number"])
            return Application.from_dict(data)

    monkeypatch.setattr(pipeline_module, "Application", Counting)
    world.load_blank()
    issuance = station.pipeline.issue(EXAMPLE_ID_NUMBER)
    assert issuance.state is State.EJECTED, issuance.reason
    assert parsed == [EXAMPLE_ID_NUMBER]
    preview = issuance.data["preview"]
    assert preview.endswith(".jpg")
    with Image.open(preview) as image:
        assert image.format == "JPEG"


def test_every_encoder_connection_is_given_back(world, station) -> None:
    """pcscd serves a client 200 contexts: a station that kept one per card would stop
    reaching the encoder after 200 cards (a day's work for a busy window)."""
    opened = []
    open_encoder = station.pipeline.devices.open_encoder

    def recording():
        transport = open_encoder()
        opened.append(transport)
        return transport

    station.pipeline.devices.open_encoder = recording
    world.load_blank(2)
    for id_number in world.cms.samples["ready"][:2]:
        assert make(station, id_number).state is State.DONE
    assert opened
    assert all(t._card is None and not t._own_context for t in opened)  # disconnected, released


def test_window_is_not_held_up_while_the_pipeline_waits_for_a_card(world, station, monkeypatch,
                                                                   pcsc_context) -> None:
    """pcsc-lite serialises calls on one context: a desk-reader operation that shared the
    pipeline's context would wait out the pipeline's card-presence wait."""
    import threading
    import time

    from cardstation.drivers.pcsc import readers
    from cardstation.drivers.pcsc.errors import CardWaitTimeout
    from cardstation.simulators.card import make_card

    monkeypatch.setattr(readers, "_WAIT_SLICE_MS", 6000)  # one long wait on the context

    def wait_for_a_card_that_never_comes() -> None:
        with pytest.raises(CardWaitTimeout):
            station.pipeline.devices.wait_for_card(6.0)

    waiter = threading.Thread(target=wait_for_a_card_that_never_comes)
    waiter.start()
    time.sleep(0.3)  # the waiter is inside SCardGetStatusChange
    world.desk.insert(make_card("personalised"))
    pcsc_context.wait_for_card(DESK_READER, timeout=5)  # on the test's own context
    try:
        started = time.monotonic()
        assert station.window is not None
        reading = station.window.services.read_card()
        took = time.monotonic() - started
        assert waiter.is_alive()  # the pipeline was still waiting all along
    finally:
        world.desk.remove()
        waiter.join()
        pcsc_context.wait_for_removal(DESK_READER, timeout=5)
    assert reading.kind == "formal"
    assert took < 3.0, f"the desk read waited {took:.1f} s behind the pipeline's wait"


def test_cms_down_during_return_card_printed_return_delivered_once(world, station) -> None:
    world.load_blank()
    # the fetch and (3rd generation) the certificates need the CMS: take it down once the
    # chip is verified, for the return
    created = station.pipeline.create(EXAMPLE_ID_NUMBER)

    def cms_goes_down(state: State) -> None:
        if state is State.VERIFIED:
            world.cms.inject("down")

    station.pipeline.after_commit = cms_goes_down
    issuance = station.pipeline.run(created.id)
    station.pipeline.after_commit = None
    # printing did not wait for the network; the card waits in the hopper, not to be handed over
    assert issuance.state is State.EJECTED and not world.model.busy
    station.worker.run_once()
    assert station.outbox.pending() and not ledger_returns(world, EXAMPLE_ID_NUMBER)
    world.cms.clear_faults()
    assert station.drain_returns(10) == 0
    station.worker.run_once()
    assert len(ledger_returns(world, EXAMPLE_ID_NUMBER)) == 1
    assert station.journal.get(created.id).state is State.DONE  # the ack made it DONE


def test_wrong_way_card_is_rejected_and_nothing_written(world, station) -> None:
    (chip,) = world.load_blank(orientation="chip_far_end")
    issuance = station.pipeline.issue(EXAMPLE_ID_NUMBER)
    assert issuance.state is State.REJECTED
    assert issuance.data["reason_code"] == "CHIP_POWER_ON_FAILED"
    assert "wrong way" in issuance.reason
    assert not chip.writes
    assert len(world.model.reject_box) == 1
    assert not station.outbox.pending()


def test_ribbon_out_mid_print_fails_then_resumes_without_rewriting(world) -> None:
    (chip,) = world.load_blank()

    def ribbon_runs_out(state: State) -> None:
        if state is State.RETURN_QUEUED:
            world.model.inject("ribbon_out")

    station = build_station(world.config(), after_commit=ribbon_runs_out)
    try:
        issuance = station.pipeline.issue(EXAMPLE_ID_NUMBER)
        assert issuance.state is State.FAILED
        assert issuance.data["reason_code"].startswith("PRINTER_RIBBON")
        writes_before = dict(chip.writes)
        world.model.clear("ribbon_out")  # the operator changes the ribbon
        station.pipeline.after_commit = None
        issuance = settled(station, station.pipeline.resume(issuance.id))
        assert issuance.state is State.DONE
        assert dict(chip.writes) == writes_before  # the chip was not written again
        assert station.drain_returns(10) == 0
        assert len(ledger_returns(world, EXAMPLE_ID_NUMBER)) == 1
    finally:
        station.close()


class _StationDied(BaseException):
    """The process ends here (nothing in the pipeline may catch it)."""


def test_a_print_that_finished_before_a_crash_is_not_printed_again(world) -> None:
    (chip,) = world.load_blank()
    station = build_station(world.config())
    print_faces = station.printer.print_faces

    def print_then_die(*args, **kwargs):
        print_faces(*args, **kwargs)
        raise _StationDied  # after the face is on the card, before PRINTED is committed

    station.printer.print_faces = print_then_die
    try:
        with pytest.raises(_StationDied):
            station.pipeline.issue(EXAMPLE_ID_NUMBER)
    finally:
        station.close()
    journal = Journal(world.data_dir / "journal.sqlite")
    (job,) = journal.unfinished()
    journal.close()
    assert job.state is State.RETURN_QUEUED and len(world.model.print_log) == 1

    restarted = build_station(world.config())
    try:
        (resumed,) = restarted.pipeline.recover()
        resumed = settled(restarted, resumed)
        assert resumed.state is State.DONE, resumed.reason
        events = [e.reason for e in restarted.journal.events(resumed.id)]
    finally:
        restarted.close()
    assert len(world.model.print_log) == 1  # the card was not printed a second time
    assert any("not printed again" in reason for reason in events)
    assert max(chip.writes.values()) == 1
    assert len(world.model.output_hopper) == 1


def test_chip_of_another_person_is_refused(world, station) -> None:
    (chip,) = world.load_blank(profile="personalised")  # carries 11010519491231002X
    other = world.cms.samples["ready"][1]
    issuance = station.pipeline.issue(other)
    assert issuance.state is State.REJECTED
    assert issuance.data["reason_code"] == "CHIP_BELONGS_TO_ANOTHER_HOLDER"
    assert not chip.writes
    assert len(world.model.reject_box) == 1


def test_reprint_refuses_another_holders_card_and_prints_the_right_one(world, station) -> None:
    (chip,) = world.load_blank()
    done = make(station, EXAMPLE_ID_NUMBER)
    assert done.state is State.DONE
    # another card (its chip does not carry this holder) put into the printer by mistake
    other_done = world.load_blank()[0]
    with pytest.raises(ReprintRefused, match="another holder"):
        station.pipeline.reprint(done.id)
    assert not other_done.writes
    # the right card back in the printer: it is reprinted
    world.model.load_card("right_way", chip=chip)
    prints_before = len(world.model.print_log)
    again = station.pipeline.reprint(done.id)
    assert again.data["reprints"] == 1
    assert len(world.model.print_log) == prints_before + 1


def test_bad_photo_stops_at_preview_and_feeds_nothing(world, station) -> None:
    world.load_blank()
    issuance = station.pipeline.issue(world.cms.samples["bad_photo"])
    assert issuance.state is State.REJECTED
    assert issuance.data["reason_code"] == "PREVIEW_FINDINGS"
    assert any(f["field"] == "photo" for f in issuance.data["findings"])
    assert len(world.model.input_cards) == 1  # the blank card was never fed
