"""The crash drill at scale: `cardstation serve` SIGKILLed again and again while it makes cards.

    python -m cardstation.reliability.drill --kills 1000 [--seed N] [--folder DIR]
    (make drill KILLS=1000)

The simulators (CMS, printer, encoder and PSAM slots) run in a process of their own
(`SimulatedStationProcess`) for the whole drill, so the CMS ledger, the printer's print log and
every chip's write counts outlive each kill, as the real devices would. The station is the
production `cardstation serve` (no --simulate) pointed at them by a cardstation.toml, with a
bearer token; CreateIssuance and ResumeIssuance go to it over gRPC.

Each run starts serve and kills it with SIGKILL either right after a journal commit into one
state (every state boundary in turn, through `cardstation.crash_hook`) or at a random moment;
meanwhile CMS faults (down, 5xx, slow, garbled answers, refused returns) come and go. At the
end a last serve finishes every job, and the drill audits what the simulators saw: one CMS
return per card made, none lost, none twice; no card's face printed twice; no chip item
written twice. Figures go to stdout as JSON lines like the benchmarks'.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import queue
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from cardstation.crash_hook import KILL_AT_STATE_ENV

#: The commits a job makes after FETCHED (FETCHED itself is written by CreateIssuance).
BOUNDARIES = ("PREVIEWED", "FED", "CHIP_WRITTEN", "VERIFIED", "RETURN_QUEUED", "PRINTED",
              "EJECTED", "DONE")
#: CMS faults switched on for a moment during a run: (name, parameters).
FAULTS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("down", {}),
    ("error_5xx", {"status": 503}),
    ("slow", {"seconds": 0.8}),
    ("malformed", {}),
    ("fail_returns", {"count": 2}),
)
LIVE_JOBS = 3  # unfinished jobs the drill keeps in the station at once, per printer
TERMINAL = ("ISSUANCE_STATE_DONE", "ISSUANCE_STATE_REJECTED")


@dataclass
class DrillResult:
    kills_asked: int
    kills: int = 0
    boundary_kills: int = 0
    random_kills: int = 0
    runs: int = 0
    faults_injected: int = 0
    cards_asked: int = 0
    jobs: Counter[str] = field(default_factory=Counter)  # final state -> count
    unconfirmed: int = 0  # CreateIssuance never answered for these ID numbers
    lost_returns: int = 0
    duplicate_returns: int = 0
    conflicts: int = 0
    double_prints: int = 0
    double_chip_writes: int = 0
    cards_made: int = 0
    rpc_errors: dict[str, int] = field(default_factory=dict)  # gRPC status -> count
    resumes: int = 0  # ResumeIssuance calls for FAILED jobs
    prints_by_printer: dict[str, int] = field(default_factory=dict)  # lane -> faces printed
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def figures(self) -> list[dict[str, Any]]:
        context = {"kills_asked": self.kills_asked, "runs": self.runs,
                   "boundary_kills": self.boundary_kills, "random_kills": self.random_kills,
                   "faults_injected": self.faults_injected, "cards_made": self.cards_made,
                   "jobs": dict(self.jobs), "rpc_errors": self.rpc_errors,
                   "resumes": self.resumes, "seconds": round(self.seconds, 1),
                   "prints_by_printer": self.prints_by_printer,
                   "s_per_kill": round(self.seconds / max(1, self.kills), 2),
                   "server": "cardstation serve, own process; simulators in another"}
        return [
            {"name": "reliability.drill_kills", "value": self.kills, "unit": "kills",
             "target": f">= {self.kills_asked}", **context},
            {"name": "reliability.drill_lost_returns", "value": self.lost_returns,
             "unit": "returns", "target": "0"},
            {"name": "reliability.drill_duplicate_returns",
             "value": self.duplicate_returns + self.conflicts, "unit": "returns",
             "target": "0", "conflicts": self.conflicts},
            {"name": "reliability.drill_double_prints", "value": self.double_prints,
             "unit": "cards", "target": "0"},
            {"name": "reliability.drill_double_chip_writes", "value": self.double_chip_writes,
             "unit": "items", "target": "0"},
            {"name": "reliability.drill_unfinished_jobs",
             "value": sum(n for s, n in self.jobs.items() if s not in TERMINAL)
             + self.unconfirmed, "unit": "jobs", "target": "0",
             "problems": self.problems[:10]},
        ]


def request_id(id_number: str) -> str:
    # opaque: a request id is stored and shown, an ID number must not be
    return "drill-" + hashlib.sha256(id_number.encode()).hexdigest()[:16]


class Serve:
    """One `cardstation serve` process; `address` once it listens."""

    def __init__(self, config: Path, env: dict[str, str], log: TextIO) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cardstation", "--log-level", "INFO", "serve",
             "--config", str(config), "--listen", "127.0.0.1:0"],
            env=env, stdout=subprocess.PIPE, stderr=log, text=True)
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put("")

    def address(self, timeout: float) -> str | None:
        """HOST:PORT once serve says it listens; None when it ended (or is slower)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                return None
            if not line:
                return None
            if line.startswith("listening on"):
                return line.split()[-1]
        return None

    def kill(self) -> bool:
        """SIGKILL unless it already ended; True when it died of a SIGKILL (ours or its own)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        return self.proc.returncode == -signal.SIGKILL

    def terminate(self, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


class Driver:
    """Keeps the station busy over gRPC: creates jobs (each with its request id, again until
    one answer came back), resumes FAILED ones, and notes the jobs' states."""

    def __init__(self, ids: list[str], token: str, resume_limit: int = 20,
                 live_jobs: int = LIVE_JOBS) -> None:
        self.live_jobs = live_jobs
        self.unstarted = list(ids)
        self.unconfirmed: list[str] = []  # asked, no answer yet (ask again, same request id)
        self.states: dict[str, str] = {}  # request id -> last known state name
        self.resumes: Counter[str] = Counter()
        self.resume_limit = resume_limit
        self.metadata = (("authorization", f"Bearer {token}"),)
        self.rpc_errors: Counter[str] = Counter()

    def step(self, stubs: Any, create_new: bool) -> bool:
        """One round; True when every job asked for is DONE or REJECTED. `create_new`: a
        new job may be created when fewer than LIVE_JOBS are unfinished."""
        from cardstation.protos.cardstation.v1 import issuance_pb2 as ipb

        unfinished = 0
        for job in self._all_jobs(stubs):
            state = ipb.IssuanceState.Name(job.state)
            self.states[job.client_request_id] = state
            if state not in TERMINAL:
                unfinished += 1
            if state == "ISSUANCE_STATE_FAILED" and self.resumes[job.id] < self.resume_limit:
                self.resumes[job.id] += 1
                self._call(stubs.ResumeIssuance, ipb.ResumeIssuanceRequest(id=job.id))
        for id_number in list(self.unconfirmed):
            self._create(stubs, id_number)
        created = False
        if create_new and self.unstarted and unfinished + len(self.unconfirmed) < self.live_jobs:
            id_number = self.unstarted.pop(0)
            self.unconfirmed.append(id_number)
            self._create(stubs, id_number)
            created = True
        return created if create_new else (unfinished == 0 and not self.unconfirmed)

    def _all_jobs(self, stubs: Any) -> list[Any]:
        """Every job, page by page (oldest first: the newest are on the last page)."""
        from cardstation.protos.cardstation.v1 import issuance_pb2 as ipb

        jobs: list[Any] = []
        token = ""
        while True:
            page = stubs.ListIssuances(ipb.ListIssuancesRequest(page_size=500, page_token=token),
                                       metadata=self.metadata, timeout=5)
            jobs.extend(page.issuances)
            token = page.next_page_token
            if not token:
                return jobs

    def _create(self, stubs: Any, id_number: str) -> None:
        from cardstation.protos.cardstation.v1 import issuance_pb2 as ipb

        request = ipb.CreateIssuanceRequest(client_request_id=request_id(id_number),
                                            id_number=id_number)
        if self._call(stubs.CreateIssuance, request) is not None:
            self.unconfirmed.remove(id_number)

    def _call(self, method: Callable[..., Any], request: Any) -> Any:
        import grpc

        try:
            return method(request, metadata=self.metadata, timeout=10)
        except grpc.RpcError as exc:
            self.rpc_errors[str(exc.code())] += 1
            return None


def _drive(address: str, driver: Driver, stop: threading.Event, create_new: bool,
           until_settled: bool = False) -> bool:
    """Drive until `stop` (or, with `until_settled`, until every job is finished). With
    `create_new`, one new job per run at most: each run then has a fresh job to kill in."""
    import grpc

    from cardstation.protos.cardstation.v1 import issuance_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        stubs = issuance_pb2_grpc.IssuanceServiceStub(channel)
        while not stop.is_set():
            try:
                if driver.step(stubs, create_new):
                    if until_settled:
                        return True
                    create_new = False
            except grpc.RpcError as exc:  # serve died under us: the run is over
                driver.rpc_errors[str(exc.code())] += 1
                if exc.code() is grpc.StatusCode.UNAVAILABLE:
                    return False
            stop.wait(0.25)
    return False


def _fault_window(sims: Any, rng: random.Random, stop: threading.Event) -> bool:
    """Switch one CMS fault on at a random moment of the run, off again soon after."""
    name, params = rng.choice(FAULTS)
    if stop.wait(rng.uniform(0.0, 1.5)):
        return False
    sims.cms_inject(name, **params)
    stop.wait(rng.uniform(0.3, 2.0))
    sims.cms_clear()
    return True


def run_drill(kills: int, folder: Path, seed: int = 20261201, cards: int | None = None,
              fault_rate: float = 0.6, log: TextIO | None = None,
              printers: int = 1) -> DrillResult:
    """Kill serve `kills` times, settle, audit; see the module docstring. With `printers`
    above 1 the station has that many lanes ([[printers]]) and the audit spans them all."""
    from cardstation.simulators.process import SimulatedStationProcess

    rng = random.Random(seed)
    result = DrillResult(kills_asked=kills)
    cards = cards if cards is not None else kills + 10  # at most one new job per run
    result.cards_asked = cards
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(folder / "serve.log", "a", encoding="utf-8") as serve_log, \
            SimulatedStationProcess(folder / "sims", speed=0.0, extra_applicants=cards,
                                    printed_faces=False, printers=printers) as sims:
        ids = sims.samples("ready")[:cards]
        token = secrets.token_urlsafe(24)
        config = _write_config(folder, sims.toml(), token)
        driver = Driver(ids, token, live_jobs=LIVE_JOBS * printers)
        while result.kills < kills:
            at_state = (BOUNDARIES[result.runs % len(BOUNDARIES)] if rng.random() < 0.5
                        else None)
            fault_seed = rng.randrange(1 << 30) if rng.random() < fault_rate else None
            _one_run(config, sims, driver, serve_log, result, at_state,
                     rng.uniform(0.0, 4.0), fault_seed)
            if log is not None and result.runs % 25 == 0:
                log.write(f"drill: {result.kills}/{kills} kills, {result.runs} runs, "
                          f"{time.monotonic() - started:.0f} s, jobs "
                          f"{dict(Counter(driver.states.values()))}\n")
        _settle(config, sims, driver, serve_log, result)
        result.seconds = time.monotonic() - started
        _audit(sims.audit(), driver, ids, result)
    return result


def _one_run(config: Path, sims: Any, driver: Driver, serve_log: TextIO, result: DrillResult,
             at_state: str | None, delay: float, fault_seed: int | None) -> None:
    """Start serve, drive it, and SIGKILL it: at the first commit into `at_state` (from
    within, by the crash hook), or `delay` seconds after its start."""
    sims.restock(blank=8)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if at_state:
        env[KILL_AT_STATE_ENV] = at_state
    serve_log.write(f"--- run {result.runs}: {at_state or f'timer {delay:.2f} s'}\n")
    serve_log.flush()
    stop = threading.Event()
    threads: list[threading.Thread] = []
    faulted: list[bool] = []
    if fault_seed is not None:
        fault_rng = random.Random(fault_seed)
        threads.append(threading.Thread(
            target=lambda: faulted.append(_fault_window(sims, fault_rng, stop)), daemon=True))
    serve = Serve(config, env, serve_log)
    t0 = time.monotonic()
    for t in threads:
        t.start()
    address = serve.address(timeout=60 if at_state else delay)
    if address is not None:
        threads.append(threading.Thread(target=_drive, args=(address, driver, stop, True),
                                        daemon=True))
        threads[-1].start()
    # a boundary no job reaches in time is a kill at a random moment after all
    wait = 15.0 if at_state else max(0.0, delay - (time.monotonic() - t0))
    with contextlib.suppress(subprocess.TimeoutExpired):
        serve.proc.wait(timeout=wait)
    died_by_hook = serve.proc.poll() is not None
    killed = serve.kill()
    stop.set()
    for t in threads:
        t.join(30)
    sims.cms_clear()
    serve_log.write(f"--- run {result.runs} ended after {time.monotonic() - t0:.2f} s"
                    f"{' (hook)' if died_by_hook else ''}; listened: {address is not None}; "
                    f"jobs {dict(Counter(driver.states.values()))}; "
                    f"rpc errors {dict(driver.rpc_errors)}\n")
    result.runs += 1
    result.faults_injected += sum(faulted)
    if not killed:
        result.problems.append(f"run {result.runs}: serve ended with "
                               f"{serve.proc.returncode}, not a kill")
        return
    result.kills += 1
    if at_state and died_by_hook:
        result.boundary_kills += 1
    else:
        result.random_kills += 1


def _write_config(folder: Path, toml: str, token: str) -> Path:
    from cardstation.server.auth import TokenStore

    tokens = folder / "tokens.json"
    tokens.write_text(json.dumps({"tokens": [{"name": "drill", "role": "admin",
                                              "sha256": TokenStore.hash(token),
                                              "expires_at": None}]}))
    config = folder / "cardstation.toml"
    config.write_text(toml + f'[server]\ntokens_file = "{tokens}"\n', encoding="utf-8")
    return config


def _settle(config: Path, sims: Any, driver: Driver, serve_log: TextIO, result: DrillResult,
            timeout: float = 300.0) -> None:
    """A last serve, no kill and no faults, until every job asked for is finished."""
    serve_log.write("--- settle\n")
    serve_log.flush()
    sims.restock(blank=8)
    serve = Serve(config, {**os.environ, "PYTHONUNBUFFERED": "1"}, serve_log)
    try:
        address = serve.address(timeout=60)
        if address is None:
            result.problems.append("serve did not start for the final run")
            return
        stop = threading.Event()
        timer = threading.Timer(timeout, stop.set)
        timer.start()
        settled = _drive(address, driver, stop, create_new=False, until_settled=True)
        timer.cancel()
        if not settled:
            result.problems.append(f"jobs not finished {timeout:.0f} s after the last kill")
    finally:
        code = serve.terminate()
        if code != 0:
            result.problems.append(f"the final serve ended with {code}")


def _audit(seen: dict[str, Any], driver: Driver, ids: list[str], result: DrillResult) -> None:
    """The invariants, from what the simulators recorded (not what the station says)."""
    asked = {request_id(i): i for i in ids if i not in driver.unstarted}
    result.unconfirmed = len(driver.unconfirmed)
    result.rpc_errors = {code.removeprefix("StatusCode."): n
                         for code, n in sorted(driver.rpc_errors.items())}
    result.resumes = sum(driver.resumes.values())
    result.jobs = Counter(driver.states.get(r, "NEVER_CREATED") for r in asked
                          if asked[r] not in driver.unconfirmed)
    done = {asked[r] for r in asked if driver.states.get(r) == "ISSUANCE_STATE_DONE"}
    ledger = seen["ledger"]
    by_id = Counter(r["record"]["id_number"] for r in ledger["returns"])
    by_atr = Counter(r["record"]["atr"].upper() for r in ledger["returns"])
    output = set(seen["output_atrs"])
    result.cards_made = len(output)
    result.lost_returns = len(done - set(by_id)) + len(output - set(by_atr))
    result.duplicate_returns = (sum(n - 1 for n in by_id.values())
                                + sum(n - 1 for n in by_atr.values()))
    result.conflicts = len(ledger["conflicts"])
    printed = Counter(r["card"] for r in seen["print_log"])
    result.prints_by_printer = dict(sorted(Counter(str(r.get("printer", "1"))
                                                   for r in seen["print_log"]).items()))
    result.double_prints = sum(n - 1 for n in printed.values())
    result.double_chip_writes = sum(1 for chip in seen["chips"]
                                    for n in chip["writes"].values() if n > 1)
    for atr in sorted(set(by_atr) - output):
        result.problems.append(f"a return for card {atr[-8:]} that is not in the output")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cardstation.reliability.drill",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--cards", type=int, default=None,
                        help="applications to make cards for (default: kills + 10)")
    parser.add_argument("--folder", default=None,
                        help="keep the drill's files here (default: a temporary folder)")
    parser.add_argument("--printers", type=int, default=1,
                        help="simulated printers (lanes), 1 to 3")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        folder = Path(args.folder) if args.folder else Path(stack.enter_context(
            tempfile.TemporaryDirectory(prefix="cardstation-drill-")))
        result = run_drill(args.kills, folder, args.seed, args.cards, log=sys.stderr,
                           printers=args.printers)
    for figure in result.figures():
        print(json.dumps(figure, ensure_ascii=False), flush=True)
    unfinished = next(f["value"] for f in result.figures()
                      if f["name"] == "reliability.drill_unfinished_jobs")
    clean = (result.kills >= args.kills and not result.lost_returns
             and not result.duplicate_returns and not result.conflicts
             and not result.double_prints and not result.double_chip_writes
             and not unfinished)
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
