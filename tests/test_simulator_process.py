"""The simulated station in a child process (what the benchmarks drive)."""

from __future__ import annotations

import pytest

from cardstation.personalization.cms import CmsClient
from cardstation.simulated import station_config
from cardstation.simulators.cms.applicants import EXAMPLE_ID_NUMBER
from cardstation.simulators.process import SimulatedStationProcess, SimulatorProcessError
from cardstation.station import build_station
from tests.support.pcsc import ENCODER_READER, PSAM_READER

pytestmark = pytest.mark.pcscd


@pytest.fixture
def child(pcsc_context, tmp_path):
    for reader in (ENCODER_READER, PSAM_READER):
        pcsc_context.wait_for_removal(reader, timeout=5)
    sim = SimulatedStationProcess(tmp_path, extra_applicants=1, printed_faces=False).start()
    pcsc_context.wait_for_card(PSAM_READER, timeout=10)
    yield sim
    sim.stop()
    for reader in (ENCODER_READER, PSAM_READER):
        pcsc_context.wait_for_removal(reader, timeout=5)


def test_a_card_is_made_against_simulators_in_another_process(child) -> None:
    assert child.load_blank(1) == 1
    station = build_station(station_config(child))
    try:
        (id_number,) = child.samples("ready")[-1:]
        issuance = station.pipeline.issue(id_number)
        station.drain_returns(10)
        issuance = station.journal.get(issuance.id)
        assert issuance.state.value == "DONE", issuance.reason
        assert issuance.data["chip"]["id_number"] == id_number
    finally:
        station.close()


def test_faults_are_injected_in_the_child_and_errors_come_back(child) -> None:
    config = station_config(child)
    child.cms_inject("error_5xx", status=503)
    with pytest.raises(Exception, match="503"):
        CmsClient(config.cms.url, "T").fetch(EXAMPLE_ID_NUMBER)
    with pytest.raises(SimulatorProcessError, match="unknown fault 'melt'"):
        child.cms_inject("melt")


def test_stopped_child_refuses_calls(tmp_path) -> None:
    sim = SimulatedStationProcess(tmp_path)
    with pytest.raises(SimulatorProcessError, match="not running"):
        sim.load_blank(1)


def test_a_child_that_died_is_reported_not_waited_for(child) -> None:
    assert child._process is not None
    child._process.kill()
    child._process.wait()
    with pytest.raises(SimulatorProcessError, match="ended unexpectedly"):
        child.samples("ready")
    with pytest.raises(SimulatorProcessError, match="not running"):
        child.samples("ready")
