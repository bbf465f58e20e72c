"""Generated inputs into every parser that faces a device or the CMS, each with a liveness check.

    python -m cardstation.reliability.fuzz --inputs 1000000 [--only apdu] [--seed N]
    (make fuzz N=1000000)

Targets (cardstation.reliability.targets): the card simulator's APDU handling, the printer
driver reading A5 reply frames, the GA 467 driver reading reader frames, the PIN pad driver
reading CSPP/1 frames, and the CMS client reading HTTP/JSON answers. Inputs come from
Hypothesis strategies: structured near the valid messages (right framing, wrong content) as
well as raw bytes, so the fuzz reaches past the first length check. Hypothesis spends a few
milliseconds on each structured example, far more than a parser does on it, so each example
is fed as drawn and then as `MUTANTS` byte-level mutants of its wire bytes (flips, cuts,
insertions, splices, boundary values), each mutant one more input.

A failure is an exception other than the component's documented error, a wrong answer the
target's own check catches, an input that takes longer than `HANG_SECONDS` (a hang), or the
target's process dying (a crash: each target runs in a child process). After every batch the
same component object must still answer a valid request correctly (liveness); if it does not,
that is a failure too. Figures go to stdout as JSON lines like the benchmarks'.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from cardstation.reliability.fuzz_target import MUTANTS, Target

#: Target name -> module in cardstation.reliability.targets defining TARGET.
TARGETS = ("apdu", "printer", "idreader", "pinpad", "cms")
#: Longer than this for one input is a hang (the slowest target needs ~1 ms per input).
HANG_SECONDS = 2.0
#: Inputs per Hypothesis run: a fresh engine (and a fresh component) per batch keeps the
#: engine's memory flat over a million inputs and checks liveness often.
BATCH = 4000
class Hang(BaseException):
    """One input ran past HANG_SECONDS (a BaseException: the component must not swallow it)."""


@dataclass
class TargetResult:
    name: str
    inputs: int = 0
    documented_errors: int = 0
    failures: int = 0
    liveness_checks: int = 0
    kinds: Counter[str] = field(default_factory=Counter)  # failure kind -> count
    examples: list[str] = field(default_factory=list)  # a few failing inputs, for the report
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "inputs": self.inputs, "failures": self.failures,
                "documented_errors": self.documented_errors,
                "liveness_checks": self.liveness_checks, "kinds": dict(self.kinds),
                "examples": self.examples[:10], "seconds": round(self.seconds, 1)}


def load_target(name: str) -> Target:
    module = importlib.import_module(f"cardstation.reliability.targets.{name}")
    target = module.TARGET
    assert isinstance(target, Target)
    return target


@contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    def expired(_signum: int, _frame: object) -> None:
        raise Hang(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    started = time.monotonic()
    outer, _interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer:  # someone else's alarm (pytest-timeout) was pending: give it back
            left = outer - (time.monotonic() - started)
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.001))


def _note(result: TargetResult, kind: str, example: Any, exc: BaseException) -> None:
    """Count a failure; keep one example of each kind and place (first 10)."""
    result.failures += 1
    result.kinds[kind] += 1
    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ else []
    ours = [f for f in frames if "/site-packages/" not in f.filename] or frames
    place = (f" at {ours[-1].filename.rsplit('/', 2)[-2]}/"
             f"{ours[-1].filename.rsplit('/', 1)[-1]}:{ours[-1].lineno}" if ours else "")
    if len(result.examples) < 10 and not any(e.startswith(kind + place + ":")
                                             for e in result.examples):
        result.examples.append(f"{kind}{place}: {str(exc)[:160]} <- {_short(example)}")


def _short(example: Any) -> str:
    text = repr(example)
    return text if len(text) <= 300 else text[:300] + "..."


def run_target(target: Target, inputs: int, seed: int) -> TargetResult:
    """Feed `inputs` generated inputs to `target` in batches; check liveness after each."""
    result = TargetResult(target.name)
    started = time.monotonic()
    batch_no = 0
    while result.inputs < inputs:
        size = max(1, min(BATCH, inputs - result.inputs) // (MUTANTS + 1))
        component = target.make()
        before = result.inputs
        _run_batch(target, component, size, seed * 100003 + batch_no, result)
        if result.inputs == before:  # the engine found nothing new to try: stop, not spin
            break
        batch_no += 1
        result.liveness_checks += 1
        try:
            with _time_limit(HANG_SECONDS * 5):
                target.alive(component)
        except (Exception, Hang) as exc:
            _note(result, f"liveness:{type(exc).__name__}", "(valid request after the batch)",
                  exc)
    result.seconds = time.monotonic() - started
    return result


def _run_batch(target: Target, component: Any, examples: int, seed: int,
               result: TargetResult) -> None:
    """One Hypothesis run of `examples` examples against one component."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed

    @settings(max_examples=examples, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), derandomize=False)
    @hypothesis_seed(seed)
    @given(target.strategy)
    def batch(example: Any) -> None:
        rng = random.Random(repr(example))
        for one in target.expand(example, rng):
            result.inputs += 1
            try:
                with _time_limit(HANG_SECONDS):
                    target.feed(component, one)
            except target.documented:
                result.documented_errors += 1
            except Hang as exc:
                _note(result, "hang", one, exc)
            except Exception as exc:
                _note(result, type(exc).__name__, one, exc)

    batch()


def _run_child(name: str, inputs: int, seed: int) -> TargetResult:
    """Run one target in its own interpreter; a child that dies is a crash."""
    proc = subprocess.run(
        [sys.executable, "-m", "cardstation.reliability.fuzz", "--child", name,
         "--inputs", str(inputs), "--seed", str(seed)],
        capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": str(seed)})
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            data = json.loads(line)
            result = TargetResult(name, data["inputs"], data["documented_errors"],
                                  data["failures"], data["liveness_checks"],
                                  Counter(data["kinds"]), data["examples"], data["seconds"])
            if proc.returncode == 0:
                return result
    result = TargetResult(name, failures=1)
    result.kinds["crash"] = 1
    result.examples.append(f"crash: exit {proc.returncode}: {proc.stderr[-500:]}")
    return result


def figures(results: list[TargetResult], asked: int) -> list[dict[str, Any]]:
    per_target = {r.name: r.to_dict() for r in results}
    total = sum(r.inputs for r in results)
    failures = sum(r.failures for r in results)
    seconds = sum(r.seconds for r in results)
    return [
        {"name": "reliability.fuzz_inputs", "value": total, "unit": "inputs",
         "target": f">= {asked}", "seconds": round(seconds, 1),
         "us_per_input": round(seconds / max(1, total) * 1e6, 1),
         "targets": {n: d["inputs"] for n, d in per_target.items()},
         "liveness_checks": sum(r.liveness_checks for r in results)},
        {"name": "reliability.fuzz_failures", "value": failures, "unit": "inputs",
         "target": "0", "by_target": {n: {"failures": d["failures"], "kinds": d["kinds"],
                                          "examples": d["examples"]}
                                      for n, d in per_target.items() if d["failures"]}},
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cardstation.reliability.fuzz",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=1_000_000,
                        help="inputs in all, shared evenly by the targets")
    parser.add_argument("--only", action="append", choices=TARGETS)
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--child", choices=TARGETS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:  # one target, this process; the parent reads the last line
        result = run_target(load_target(args.child), args.inputs, args.seed)
        print(json.dumps(result.to_dict(), ensure_ascii=False), flush=True)
        return 0
    names = args.only or list(TARGETS)
    share, extra = divmod(args.inputs, len(names))
    results = []
    for i, name in enumerate(names):
        result = _run_child(name, share + (1 if i < extra else 0), args.seed + i)
        print(f"fuzz: {name}: {result.inputs} inputs, {result.failures} failures, "
              f"{result.seconds:.0f} s", file=sys.stderr, flush=True)
        results.append(result)
    for figure in figures(results, args.inputs):
        print(json.dumps(figure, ensure_ascii=False), flush=True)
    return 0 if all(r.failures == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
