"""Crash drill (issue 17, the small CI version of `make drill`): the production `cardstation
serve` is SIGKILLed at state boundaries and at random moments while it makes cards against
simulators in a process of their own, with CMS faults coming and going; then the CMS ledger,
the printer's print log and the chip write counts are audited. The figures are invariants,
not fixed counts: at least the kills asked for, nothing lost, nothing twice.
"""

from __future__ import annotations

from collections import Counter

import pytest

from cardstation.reliability import drill
from tests.support.pcsc import ENCODER_READER, PSAM_READER

KILLS = 12


@pytest.mark.pcscd
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sigkill_serve_at_boundaries_and_random_moments(pcsc_context, tmp_path) -> None:
    for reader in (ENCODER_READER, PSAM_READER):
        pcsc_context.wait_for_removal(reader, timeout=5)
    try:
        result = drill.run_drill(KILLS, tmp_path, seed=20261201, fault_rate=0.6)
    finally:
        for reader in (ENCODER_READER, PSAM_READER):
            pcsc_context.wait_for_removal(reader, timeout=10)
    figures = {f["name"]: f["value"] for f in result.figures()}
    assert figures["reliability.drill_kills"] >= KILLS
    assert result.boundary_kills >= 1 and result.random_kills >= 1
    assert figures["reliability.drill_lost_returns"] == 0
    assert figures["reliability.drill_duplicate_returns"] == 0
    assert figures["reliability.drill_double_prints"] == 0
    assert figures["reliability.drill_double_chip_writes"] == 0
    assert figures["reliability.drill_unfinished_jobs"] == 0, result.problems
    assert result.cards_made >= 1
    assert set(result.jobs) <= {"ISSUANCE_STATE_DONE", "ISSUANCE_STATE_REJECTED"}


def _seen(returns: list[tuple[str, str]], output: list[str], printed: list[int],
          writes: list[dict[int, int]]) -> dict:
    return {"ledger": {"returns": [{"record": {"id_number": i, "atr": a}} for i, a in returns],
                       "conflicts": []},
            "output_atrs": output, "print_log": [{"card": c} for c in printed],
            "chips": [{"atr": "X", "writes": w, "binary_writes": 0} for w in writes],
            "reject_box": 0}


def _driver(done: list[str]) -> drill.Driver:
    d = drill.Driver(list(done), token="t")
    d.unstarted = []
    d.states = {drill.request_id(i): "ISSUANCE_STATE_DONE" for i in done}
    return d


def test_the_audit_counts_what_went_wrong() -> None:
    """The drill's audit can fail: a card out without its return, a return sent twice, a
    face printed twice, a chip item written twice are each counted."""
    result = drill.DrillResult(kills_asked=1)
    seen = _seen(returns=[("A", "AA01"), ("A", "AA01")], output=["AA01", "BB02"],
                 printed=[1, 2, 2], writes=[{0x01: 1, 0x02: 2}, {0x01: 1}])
    drill._audit(seen, _driver(["A", "B"]), ["A", "B"], result)
    assert result.lost_returns == 2  # B is DONE with no return, and card BB02 has none
    assert result.duplicate_returns == 2  # by ID number and by card
    assert result.double_prints == 1
    assert result.double_chip_writes == 1
    assert result.jobs == Counter({"ISSUANCE_STATE_DONE": 2})


def test_a_clean_audit_counts_nothing() -> None:
    result = drill.DrillResult(kills_asked=1)
    seen = _seen(returns=[("A", "AA01")], output=["AA01"], printed=[1], writes=[{0x01: 1}])
    drill._audit(seen, _driver(["A"]), ["A"], result)
    assert (result.lost_returns, result.duplicate_returns, result.double_prints,
            result.double_chip_writes) == (0, 0, 0, 0)


def test_the_driver_reads_every_page_of_jobs() -> None:
    """Jobs are listed oldest first: past one page the newest (the unfinished ones) are on
    the last page, and a driver reading one page would call an unfinished drill settled."""
    from types import SimpleNamespace

    from cardstation.protos.cardstation.v1 import issuance_pb2 as ipb

    pages = {"": (["DONE"] * 500, "p2"), "p2": (["PRINTED"], "")}

    def list_issuances(request, **_kw):
        states, token = pages[request.page_token]
        return SimpleNamespace(next_page_token=token, issuances=[
            SimpleNamespace(id=f"{request.page_token}{n}", client_request_id=f"r{n}",
                            state=ipb.IssuanceState.Value(f"ISSUANCE_STATE_{s}"))
            for n, s in enumerate(states)])

    driver = drill.Driver([], token="t")
    assert driver.step(SimpleNamespace(ListIssuances=list_issuances), create_new=False) is False
