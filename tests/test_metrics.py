"""/metrics for Prometheus on the production server (`serve --simulate`): it parses with
prometheus-client's own parser, its numbers match the journal and the outbox after a batch,
and no label carries an ID number or a card number."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cardstation.config import Config
from cardstation.personalization.journal import State
from cardstation.protos.cardstation.v1 import issuance_pb2 as ipb
from cardstation.protos.cardstation.v1 import issuance_pb2_grpc
from cardstation.simulators.cms.applicants import EXAMPLE_ID_NUMBER
from tests.support.pcsc import ENCODER_READER, PSAM_READER

pytestmark = pytest.mark.pcscd


@pytest.fixture
def served(pcsc_context, tmp_path) -> Iterator[object]:
    from cardstation.commands.serve import start_server

    for reader in (ENCODER_READER, PSAM_READER):
        pcsc_context.wait_for_removal(reader, timeout=10)
    running = start_server(Config(), "127.0.0.1:0", simulate=True, speed=0.0, blank_cards=3,
                           folder=str(tmp_path / "sim"), metrics_listen="127.0.0.1:0")
    yield running
    running.stop()


def scrape(port: int) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    values: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            values.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = \
                sample.value
    return values


def test_metrics_match_the_journal_after_a_batch(served) -> None:
    runtime = served.runtime
    channel = grpc.insecure_channel(f"127.0.0.1:{served.port}")
    stub = issuance_pb2_grpc.IssuanceServiceStub(channel)
    made = []
    other = next(i for i in served.simulated.cms.samples["ready"] if i != EXAMPLE_ID_NUMBER)
    for id_number in (EXAMPLE_ID_NUMBER, other):
        job = stub.CreateIssuance(ipb.CreateIssuanceRequest(id_number=id_number),
                                  timeout=60).issuance
        made.append(job.id)
    for job_id in made:
        for _ in range(300):
            if runtime.journal.get(job_id).state is State.DONE:
                break
            runtime.closing.wait(0.1)
        assert runtime.journal.get(job_id).state is State.DONE
        chip = stub.GetIssuance(ipb.GetIssuanceRequest(id=job_id), timeout=10).issuance.chip
        assert "*" in chip.bank_account and chip.card_id_code  # the account masked, as ReadCard
    runtime.refresh()
    values = scrape(served.metrics_port)
    counts = runtime.journal.state_counts()
    assert values["cardstation_issuances"][(("state", "DONE"),)] == counts[State.DONE] == 2
    assert values["cardstation_issuances_finished_total"][(("outcome", "done"),)] == 2
    assert values["cardstation_returns_pending"][()] == 0
    assert values["cardstation_returns_delivered_total"][()] == 2
    assert values["cardstation_queue_jobs"][()] == 0
    assert values["cardstation_printer_up"][(("lane", "1"),)] == 1
    assert 0 < values["cardstation_ribbon_remaining_ratio"][(("lane", "1"),)] <= 1
    assert values["cardstation_printer_cards_printed_total"][(("lane", "1"),)] == 2
    assert values["cardstation_apdus_total"][(("sw_class", "9000"),)] > 50
    cms = values["cardstation_cms_requests_total"]
    assert cms[(("operation", "return"), ("result", "ok"))] >= 2
    assert cms[(("operation", "fetch"), ("result", "ok"))] >= 2
    stages = values["cardstation_stage_duration_seconds_count"]
    assert stages[(("stage", "PRINTED"),)] == 2 and stages[(("stage", "DONE"),)] == 2
    assert values["cardstation_build_info"]
    labels = " ".join(f"{k}={v}" for series in values.values() for key in series
                      for k, v in key)
    assert not re.search(r"\d{15,}|\d{17}[\dX]", labels)  # no ID or account number
    channel.close()


def test_a_fault_is_counted_once_when_it_appears(served) -> None:
    runtime = served.runtime
    model = served.simulated.model
    model.set_cover(True)
    runtime.refresh()
    runtime.refresh()  # still there: not counted again
    model.set_cover(False)
    runtime.refresh()
    values = scrape(served.metrics_port)
    assert values["cardstation_device_faults_total"][
        (("code", "PRINTER_COVER_OPEN"), ("device", "printer"), ("lane", "1"))] == 1
    assert values["cardstation_printer_up"][(("lane", "1"),)] == 1


def test_the_shipped_dashboard_and_alert_rules_use_only_metrics_the_station_exports(
        served) -> None:
    from pathlib import Path

    text = urllib.request.urlopen(f"http://127.0.0.1:{served.metrics_port}/metrics",
                                  timeout=10).read().decode()
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"),
                "info": ("_info",)}
    exported = set()
    for family in text_string_to_metric_families(text):  # families with no sample yet too
        exported |= {family.name + s for s in suffixes.get(family.type, ("",))}
    ops = Path(__file__).resolve().parent.parent / "ops"
    used = set()
    for path in (ops / "grafana" / "cardstation-dashboard.json",
                 ops / "prometheus" / "cardstation-rules.yml"):
        used |= set(re.findall(r"cardstation_[a-z_]+", path.read_text()))
    assert used <= exported, sorted(used - exported)
