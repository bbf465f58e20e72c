"""The small CI version of `make fuzz` (issue 17): a few thousand generated inputs into each
parser with its liveness check, asserting the invariant (no failure), and checks that the
harness itself sees failures, hangs and dead components."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from hypothesis import strategies as st

from cardstation.reliability import fuzz
from cardstation.reliability.fuzz_target import Target, mutate


@pytest.mark.parametrize("name", fuzz.TARGETS)
def test_generated_inputs_find_no_failure(name: str) -> None:
    target = fuzz.load_target(name)
    result = fuzz.run_target(target, 1000, seed=7)
    assert result.inputs >= 1000
    assert result.liveness_checks >= 1
    assert result.failures == 0, result.examples
    if target.documented:  # the inputs did reach the parser's error paths
        assert result.documented_errors > 0


def _target(feed, alive=lambda _c: None) -> Target:
    return Target(name="probe", strategy=st.binary(max_size=4), make=dict, feed=feed,
                  documented=(ValueError,), alive=alive,
                  expand=lambda example, rng: [example, mutate(example, rng)])


def test_an_undocumented_exception_is_a_failure_and_a_documented_one_is_not() -> None:
    def feed(_c: object, data: bytes) -> None:
        if data[:1] == b"\x00":
            raise KeyError("not the component's error")
        raise ValueError("documented")

    result = fuzz.run_target(_target(feed), 400, seed=1)
    assert result.failures > 0 and result.kinds["KeyError"] == result.failures
    assert result.documented_errors > 0
    assert result.failures + result.documented_errors == result.inputs


def test_a_hang_is_a_failure(monkeypatch) -> None:
    monkeypatch.setattr(fuzz, "HANG_SECONDS", 0.05)

    def feed(_c: object, data: bytes) -> None:
        if data == b"":
            time.sleep(1)

    result = fuzz.run_target(_target(feed), 40, seed=1)
    assert result.kinds["hang"] >= 1


def test_a_component_that_stops_answering_fails_liveness() -> None:
    def alive(_c: object) -> None:
        raise ConnectionError("no answer")

    result = fuzz.run_target(_target(lambda _c, _d: None, alive), 40, seed=1)
    assert result.kinds["liveness:ConnectionError"] == result.liveness_checks >= 1


def test_make_fuzz_prints_the_figures_as_json_lines() -> None:
    proc = subprocess.run([sys.executable, "-m", "cardstation.reliability.fuzz", "--inputs",
                           "500"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    figures = {f["name"]: f for f in map(json.loads, proc.stdout.splitlines())}
    assert figures["reliability.fuzz_inputs"]["value"] >= 500
    assert set(figures["reliability.fuzz_inputs"]["targets"]) == set(fuzz.TARGETS)
    assert figures["reliability.fuzz_failures"]["value"] == 0


def test_the_hang_timer_gives_back_an_alarm_that_was_pending() -> None:
    """pytest-timeout (and anyone else) may have an alarm running: it must survive the fuzz."""
    import signal

    signal.setitimer(signal.ITIMER_REAL, 100.0)
    previous = signal.signal(signal.SIGALRM, lambda *_: None)
    try:
        with fuzz._time_limit(1.0):
            pass
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 90.0 < left <= 100.0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
