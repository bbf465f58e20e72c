"""Journal figures at scale: what a station's journal costs after years of cards.

A journal is seeded with N finished issuances (DONE, each with its nine events and a delivered
outbox row; no photos, otherwise rows of a real job's size), written straight into the
journal's schema with executemany in one transaction, then a few live jobs. Each query the
station runs is timed at 10^3 rows and at N (default 10^6) and the ratio is reported:
ListIssuances' first and a deep page (`issuances` with a cursor), the FAILED filter the
station view reads, `live_for` / `history_for` of an applicant, `open_issuance` (its
one-live-job-per-applicant check), the outbox's due / pending / summary queries,
`state_counts`, and a transition commit.

    CARDSTATION_BENCH_JOURNAL_ROWS=100000 cardstation bench --only journal

The journal is opened with durable=False (no fsync): the figures show what grows with the
rows, not the disk's flush time, which is the same at any size.
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cardstation.personalization.journal import FORWARD, Journal, State
from cardstation.personalization.outbox import Outbox

ROWS_ENV = "CARDSTATION_BENCH_JOURNAL_ROWS"
SMALL = 1_000
LARGE = 1_000_000
PAGE = 50
T0 = 1_600_000_000.0  # the first seeded job's time; one job a minute after it


# The seeded rows are made by SQLite itself (a recursive counter and json_object), so seeding
# a million jobs costs no Python per row. Ids follow creation order (the keys' B-trees fill in
# order, which keeps seeding fast); the station's own ids are random, which no query here
# depends on. Applicants repeat every 500,000 jobs (a second card for some).
_ID_NUMBER = "printf('110105%08d%03dX', 19490101 + i % 500000, i % 1000)"
_ISSUANCE_ID = "printf('%012x', i) || '00000000000000000000'"
_SEED_ISSUANCES = f"""
INSERT INTO issuances (id, client_request_id, id_number, state, application, data, reason,
                       failed_from, created_at, updated_at, id_lookup, id_masked)
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < :rows)
SELECT {_ISSUANCE_ID}, 'auto-' || {_ISSUANCE_ID}, {_ID_NUMBER}, 'DONE',
    json_object('id_number', {_ID_NUMBER}, 'name', '张三丰', 'sex', '1', 'nation', '01',
                'birth_date', '19491231', 'birthplace', '110105',
                'card_number', printf('BA%07d', i), 'bank_name', '中国建设银行',
                'batch', printf('B2024%04d-00001', i % 1000), 'issue_date', '20240101',
                'expiry_date', '20340101', 'photo', ''),
    json_object('card_serial', printf('%016X', i), 'atr', '3B6D000080318065B08702270F9000',
                'card_id_code', printf('%032X', i), 'print_count_before', i,
                'chip_written_at', :t0 + 60.0 * i + 40, 'verified', json('true'),
                'return_ack', printf('ACK-%010d', i), 'printer_serial', 'HT2201234',
                'ribbon', 'YMCKO', 'face_sha256', printf('%064x', i), 'bank_code', '105'),
    '', NULL, :t0 + 60.0 * i, :t0 + 60.0 * i + 90, id_lookup({_ID_NUMBER}), ''
FROM n
"""
# Nine events per job, FETCHED .. DONE, ten seconds apart.
_SEED_EVENTS = """
INSERT INTO events (issuance_id, seq, at, from_state, to_state, reason, data)
SELECT i.id, s.seq, i.created_at + 10 * s.seq, s.frm, s.dest, '', '{{}}'
FROM issuances AS i CROSS JOIN (
    SELECT column1 AS seq, column2 AS frm, column3 AS dest FROM (VALUES {steps})) AS s
"""
# A delivered return per job.
_SEED_OUTBOX = """
INSERT INTO outbox (issuance_id, idempotency_key, record, status, attempts, total_attempts,
                    next_attempt_at, lease_until, claimed_by, last_error, last_error_code, ack,
                    created_at, updated_at, delivered_at)
SELECT id, id || ':return',
    json_object('id_number', id_number, 'card_number', printf('BA%07d', rowid - 1),
                'card_id_code', printf('%032X', rowid - 1),
                'bank_card', printf('6217%015d', rowid - 1), 'status', '1',
                'station', 'station-1', 'issued_at', '20240101120000'),
    'delivered', 1, 1, created_at + 50, NULL, NULL, '', '', printf('ACK-%010d', rowid - 1),
    created_at + 50, created_at + 60, created_at + 60
FROM issuances ORDER BY rowid
"""


def _steps_sql() -> str:
    steps, frm = [], "NULL"
    for seq, state in enumerate(FORWARD, start=1):
        steps.append(f"({seq}, {frm}, '{state.value}')")
        frm = f"'{state.value}'"
    return ", ".join(steps)


def _id_number(n: int) -> str:
    """The seeded applicant of job `n` (as _ID_NUMBER makes it)."""
    return f"110105{19490101 + n % 500_000:08d}{n % 1000:03d}X"


def seed(path: Path, rows: int) -> float:
    """Make the journal at `path` and fill it with `rows` finished jobs; seconds taken."""
    t0 = time.perf_counter()
    with Journal(path, durable=False) as journal:  # the schema, exactly as the station makes it
        keys = journal.keys
    conn = sqlite3.connect(path, isolation_level=None)
    # the applicant look-up the journal finds jobs by (schema 4); the seeded rows are otherwise
    # in clear (a journal from before sealing reads the same way, without the cipher's cost)
    conn.create_function("id_lookup", 1, keys.lookup, deterministic=True)
    try:
        # No write-ahead log while seeding: in one transaction a WAL would hold every page
        # (gigabytes) and then copy each one again into the file. The journal is WAL again
        # before anything is measured.
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA cache_size = -262144")  # 256 MB while seeding
        conn.execute("BEGIN")
        # The secondary indexes are built once after the rows, from the journal's own
        # definitions (a sorted build is much faster than a million ordered inserts).
        indexes = conn.execute("SELECT name, sql FROM sqlite_master "
                               "WHERE type = 'index' AND sql IS NOT NULL").fetchall()
        for name, _ in indexes:
            conn.execute(f"DROP INDEX {name}")
        conn.execute(_SEED_ISSUANCES, {"rows": rows, "t0": T0})
        conn.execute(_SEED_EVENTS.format(steps=_steps_sql()))
        conn.execute(_SEED_OUTBOX)
        for _, sql in indexes:
            conn.execute(sql)
        conn.execute("COMMIT")
        conn.execute("PRAGMA journal_mode = WAL")
        # No ANALYZE: a station never runs it, so the planner's choices here are its choices.
    finally:
        conn.close()
    return time.perf_counter() - t0


def _timed(fn: Callable[[int], object], repeat: int) -> float:
    """Median milliseconds of fn(i) for i in range(repeat)."""
    times = []
    for i in range(repeat):
        t0 = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def measure(path: Path, rows: int, repeat: int = 21) -> dict[str, float]:
    """Each query's median ms on the seeded journal of `rows` finished jobs."""
    clock = [T0 + 60.0 * rows + 3600]

    def now() -> float:
        clock[0] += 1.0
        return clock[0]

    with Journal(path, clock=now, durable=False) as journal:
        outbox = Outbox(journal)
        # a few live jobs, as a working station has: some queued returns, one FAILED
        template = journal.issuances(limit=1)[0].application

        def application(n: int) -> dict[str, Any]:
            return {**template, "id_number": _id_number(n), "card_number": f"BA{n:07d}"}

        live = [journal.create(application(rows + i), _id_number(rows + i)) for i in range(5)]
        journal.transition(live[0].id, State.FAILED, reason="bench: a failed job")
        deep = journal.issuances(limit=1, after=None)[0].id
        for _ in range(3):  # walk to about 150 jobs in, then jump to the middle
            page = journal.issuances(limit=PAGE, after=deep)
            deep = page[-1].id if page else deep  # a tiny journal has fewer pages
        middle = f"{rows // 2:012x}{'0' * 20}"
        applicants = [_id_number((i * 7919) % rows) for i in range(repeat)]
        fresh = [_id_number(rows + 100 + i) for i in range(repeat)]
        figures = {
            "list_page_ms": _timed(lambda i: journal.issuances(limit=PAGE), repeat),
            "list_deep_page_ms": _timed(lambda i: journal.issuances(limit=PAGE, after=middle),
                                        repeat),
            "list_next_page_ms": _timed(lambda i: journal.issuances(limit=PAGE, after=deep),
                                        repeat),
            "list_failed_ms": _timed(lambda i: journal.issuances(state=State.FAILED,
                                                                  limit=500), repeat),
            "live_for_ms": _timed(lambda i: journal.live_for(applicants[i]), repeat),
            "history_for_ms": _timed(lambda i: journal.history_for(applicants[i]), repeat),
            "open_issuance_ms": _timed(
                lambda i: journal.open_issuance(application(rows + 100 + i), fresh[i]),
                repeat),
            "outbox_due_ms": _timed(lambda i: outbox.due(), repeat),
            "outbox_pending_ms": _timed(lambda i: outbox.pending(), repeat),
            "outbox_summary_ms": _timed(lambda i: outbox.summary(), repeat),
            "state_counts_ms": _timed(lambda i: journal.state_counts(), repeat),
        }
        opened = journal.issuances(state=State.FETCHED, limit=repeat)
        figures["transition_ms"] = _timed(
            lambda i: journal.transition(opened[i].id, State.PREVIEWED), len(opened))
        figures["list_page_ms_p99"] = _list_page_p99(journal, rows)
    return figures


def _list_page_p99(journal: Journal, rows: int, calls: int = 200) -> float:
    """p99 ms of ListIssuances' page query over `calls` pages: the first, and pages after
    cursors spread over the whole journal (as a console paging anywhere would ask)."""
    times = []
    for i in range(calls):
        after = None if i % 10 == 0 else f"{(i * 104_729) % rows:012x}{'0' * 20}"
        t0 = time.perf_counter()
        journal.issuances(limit=PAGE, after=after)
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]


#: where the jobs interrupted by the crash are (10 of them, mid-way)
_MID_WAY = (State.FETCHED, State.PREVIEWED, State.FED, State.CHIP_WRITTEN, State.VERIFIED,
            State.FED, State.PREVIEWED, State.CHIP_WRITTEN, State.FED, State.FAILED)


def recovery_seconds(path: Path, rows: int) -> float:
    """A station's start on a journal of `rows` finished jobs and 10 cut off mid-way: open the
    file as the station does (durable, its checks and the data key), then what restart
    recovery reads before any device is touched: the unfinished jobs with their events, the
    jobs holding a printer (FAILED), the returns due, and the counts for the station picture."""
    with Journal(path, durable=False) as journal:
        template = journal.issuances(limit=1)[0].application
        for n, state in enumerate(_MID_WAY):
            number = _id_number(rows + 1000 + n)
            job = journal.create({**template, "id_number": number,
                                  "card_number": f"BC{n:07d}"}, number)
            target = State.FED if state is State.FAILED else state
            for step in FORWARD[1:FORWARD.index(target) + 1]:
                job = journal.transition(job.id, step)
            if state is State.FAILED:
                journal.transition(job.id, State.FAILED, reason="bench: cut off")
    t0 = time.perf_counter()
    with Journal(path) as journal:
        outbox = Outbox(journal)
        unfinished = journal.unfinished()
        for job in unfinished:
            journal.events(job.id)
        journal.issuances(state=State.FAILED, limit=500)
        outbox.due()
        journal.state_counts()
    seconds = time.perf_counter() - t0
    if len(unfinished) != len(_MID_WAY):
        raise RuntimeError(f"recovery found {len(unfinished)} unfinished jobs, expected "
                           f"{len(_MID_WAY)}")
    return seconds


def paired_transitions(tiny: Path, large: Path, large_rows: int,
                       n: int = 101) -> tuple[float, float]:
    """Median ms of a transition on the journal of 10 rows and on the large one, taken in
    turn (tiny, large, tiny, ...) so that the machine's drift (a VM's stolen time comes in
    bursts) falls on both alike."""
    journals = [Journal(tiny, durable=False), Journal(large, durable=False)]
    try:
        jobs: list[list[str]] = []
        for journal, rows in zip(journals, (10, large_rows), strict=True):
            template = journal.issuances(limit=1)[0].application
            numbers = [_id_number(rows + 5000 + i) for i in range(n)]
            jobs.append([journal.create({**template, "id_number": number,
                                         "card_number": f"BD{i:07d}"}, number).id
                         for i, number in enumerate(numbers)])
        times: list[list[float]] = [[], []]
        for i in range(n):
            for side, journal in enumerate(journals):
                t0 = time.perf_counter()
                journal.transition(jobs[side][i], State.PREVIEWED)
                times[side].append((time.perf_counter() - t0) * 1000)
        return statistics.median(times[0]), statistics.median(times[1])
    finally:
        for journal in journals:
            journal.close()


def _one(rows: int, repeat: int = 21, *, paired: bool = False
         ) -> tuple[dict[str, float], float, int]:
    with tempfile.TemporaryDirectory(prefix="cardstation-journal-bench-") as tmp:
        path = Path(tmp) / "journal.sqlite"
        seconds = seed(path, rows)
        size = path.stat().st_size
        recovery = recovery_seconds(path, rows)  # first: the only unfinished jobs are its own
        figures = measure(path, rows, repeat)
        figures["recovery_s"] = recovery
        if paired:
            tiny = Path(tmp) / "tiny.sqlite"
            seed(tiny, 10)
            figures["transition_ms_10"], figures["transition_ms_paired"] = \
                paired_transitions(tiny, path, rows)
        return figures, seconds, size


def run(rows: int | None = None) -> list[dict]:
    large = rows or int(os.environ.get(ROWS_ENV, LARGE))
    small_figures, _, _ = _one(SMALL)
    large_figures, seed_s, size = _one(large, paired=True)
    tag = f"1e{len(str(large)) - 1}" if str(large).strip("0") == "1" else str(large)
    out: list[dict] = [
        {"name": f"journal.seed_s.{tag}", "value": round(seed_s, 1), "unit": "s",
         "rows": large, "events": large * len(FORWARD), "outbox": large,
         "file_mb": round(size / 2**20, 1)},
        # the figures issue 18 asks for by name
        {"name": "journal.list_page_ms.p99", "value": round(large_figures["list_page_ms_p99"], 3),
         "unit": "ms", "target": "<= 20", "rows": large, "pages": 200, "page_size": PAGE},
        {"name": f"journal.transition_ratio_{tag}",
         "value": round(large_figures["transition_ms_paired"]
                        / large_figures["transition_ms_10"], 2),
         "unit": "ratio", "target": "<= 1.2", "rows": f"{large} / 10", "transitions": 101,
         "ms": [round(large_figures["transition_ms_10"], 3),
                round(large_figures["transition_ms_paired"], 3)],
         "how": "the two journals open at once, a transition on each in turn"},
        {"name": f"journal.recovery_s_{tag}", "value": round(large_figures["recovery_s"], 3),
         "unit": "s", "target": "<= 2", "rows": large, "jobs_mid_way": len(_MID_WAY),
         "what": "open the journal as serve does, then what restart recovery reads before any "
                 "device: unfinished jobs and their events, FAILED jobs, returns due, counts"},
    ]
    for key, small in small_figures.items():
        if key in ("list_page_ms_p99", "recovery_s"):
            continue
        big = large_figures[key]
        name = key.removesuffix("_ms")
        out.append({"name": f"journal.{key}.1e3", "value": round(small, 3), "unit": "ms",
                    "rows": SMALL})
        out.append({"name": f"journal.{key}.{tag}", "value": round(big, 3), "unit": "ms",
                    "rows": large})
        out.append({"name": f"journal.growth_ratio.{name}",
                    "value": round(big / small, 2) if small > 0 else None, "unit": "ratio",
                    "rows": f"{large} / {SMALL}"})
    return out
