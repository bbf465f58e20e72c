"""The day's reconciliation (`cardstation report day`): what the journal says happened to cards,
card stock, ribbon and returns on one calendar day (the station's local time), for the hand-over
sheet (成品卡交接) and for checking against the printer's own counters.

Everything is read from the journal's events (read-only, so it runs while the station works):

* made: jobs that became DONE that day (the CMS acknowledged their return), with the masked ID
  number (first 6 + last 4: never the full number) and the card number; `spoiled` marks a made
  card later marked spoiled;
* rejected: jobs that became REJECTED that day, by reason code; `rejected_cards` counts those
  that used a card (it went to the reject box), the others stopped before a card was fed
  (preview findings, a cancel);
* spoiled: cards marked spoiled that day (废卡);
* reprinted: faces reprinted that day (补打卡面, the same card put back: no new blank);
* blank cards used: jobs whose first feed was that day, and jobs whose card went to the reject
  box before its feed could be recorded (a wrong-way card, a foreign chip): one blank each;
* prints: the pipeline journals the printer's own print counter before every print
  (`print_count_before`), so the day's prints as the printer counts them are the counter
  before the first print of the next day's (or `print_count_now`, read from the printer) minus
  the counter before the day's first print. Against them: the prints the station made (one per
  card printed, one per reprint) — each print uses one ribbon print (one YMCKO panel set: the
  emblem side is pre-printed stock), so the same number is the ribbon prints used, to be
  compared with the ribbon's own counter;
* ribbon: the ribbon's own counter (prints left) is not journaled with each print, so it is
  taken from printer readings: `record_reading` keeps each reading of the printer's counters
  (`report day --read-printer`) in the journal's meta table; the ribbon prints the printer
  counted for the day are the prints left in the last reading before the day's first print
  minus those in the reading after its last print (the live one for today). A ribbon changed
  during the day shows as a difference to explain;
* returns: acknowledged by the CMS that day; pending and failed now (whatever their day).

`difference` fields are printer minus station: anything but 0 is to be explained by the
operator (a test print from the printer's panel, a card taken by hand).
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from cardstation.logs import mask_id_number
from cardstation.personalization.journal import open_read_only
from cardstation.personalization.outbox import WITHDRAWN

# the pipeline's own list of faults that send the card to the reject box (one source)
from cardstation.personalization.pipeline import _CARD_IS_BAD as CARD_IS_BAD

SPOILED = "CARD_SPOILED"
#: The journal meta key holding the printer readings (JSON list, oldest first).
READINGS_KEY = "printer_readings"
#: Readings kept: a month and more of daily hand-overs.
MAX_READINGS = 100


@dataclass(frozen=True)
class MadeCard:
    issuance_id: str
    id_number_masked: str
    card_number: str
    done_at: str  # local time, HH:MM
    spoiled: bool = False


@dataclass
class DayReport:
    date: str
    station_id: str
    made: list[MadeCard] = field(default_factory=list)
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    rejected_cards: int = 0
    spoiled: int = 0
    reprinted: int = 0
    blank_cards_used: int = 0
    prints: dict[str, int | None] = field(default_factory=dict)
    ribbon: dict[str, int | None] = field(default_factory=dict)
    returns: dict[str, int] = field(default_factory=dict)

    @property
    def made_count(self) -> int:
        return len(self.made)

    @property
    def rejected(self) -> int:
        return sum(self.rejected_by_reason.values())

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["made_count"] = self.made_count
        out["rejected"] = self.rejected
        return out


def day_bounds(day: date) -> tuple[float, float]:
    """The epoch seconds of the day's start and of the next day's, in local time."""
    start = datetime.combine(day, time()).astimezone()
    end = datetime.combine(day + timedelta(days=1), time()).astimezone()
    return start.timestamp(), end.timestamp()


def _events(conn: sqlite3.Connection, start: float, end: float) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT issuance_id, at, from_state, to_state, data FROM events "
        "WHERE at >= ? AND at < ? ORDER BY at, issuance_id, seq", (start, end)).fetchall()


def _first_feeds(conn: sqlite3.Connection, start: float, end: float) -> set[str]:
    rows = conn.execute(
        "SELECT issuance_id, MIN(at) FROM events WHERE to_state = 'FED' AND from_state != "
        "'FED' GROUP BY issuance_id HAVING MIN(at) >= ? AND MIN(at) < ?", (start, end))
    return {row[0] for row in rows}


def _ever_fed(conn: sqlite3.Connection, issuance_id: str) -> bool:
    return conn.execute("SELECT 1 FROM events WHERE issuance_id = ? AND to_state = 'FED' "
                        "LIMIT 1", (issuance_id,)).fetchone() is not None


def _job(conn: sqlite3.Connection, issuance_id: str) -> tuple[str, dict[str, Any],
                                                             dict[str, Any]]:
    """The masked ID number and the clear facts of a job. Read without the data key: the
    personal fields are sealed (journal schema 4), what the report needs is kept in clear (the
    masked number, the card number, spoiled), and it survives a retention purge."""
    try:
        row = conn.execute("SELECT id_masked, application, data FROM issuances WHERE id = ?",
                           (issuance_id,)).fetchone()
        masked = row[0]
    except sqlite3.OperationalError:  # a journal from before schema 4 (not yet migrated)
        row = conn.execute("SELECT id_number, application, data FROM issuances WHERE id = ?",
                           (issuance_id,)).fetchone()
        masked = mask_id_number(row[0])
    return masked, json.loads(row[1]), json.loads(row[2])


def _made_card(conn: sqlite3.Connection, issuance_id: str, at: float) -> MadeCard:
    masked, application, data = _job(conn, issuance_id)
    chip = data.get("chip") or {}
    return MadeCard(issuance_id, masked,
                    str(chip.get("card_number") or application.get("card_number", "")),
                    datetime.fromtimestamp(at).strftime("%H:%M"), bool(data.get("spoiled")))


def _print_counts(conn: sqlite3.Connection, start: float, end: float,
                  now_count: int | None) -> tuple[int | None, int | None]:
    """The printer's counter before the day's first print and after its last (from the next
    journaled print, else `now_count`)."""
    counters = [json.loads(row[0])["print_count_before"] for row in conn.execute(
        "SELECT data FROM events WHERE at >= ? AND at < ? AND "
        "json_extract(data, '$.print_count_before') IS NOT NULL ORDER BY at", (start, end))]
    if not counters:
        return None, None
    later = conn.execute(
        "SELECT data FROM events WHERE at >= ? AND json_extract(data, "
        "'$.print_count_before') IS NOT NULL ORDER BY at LIMIT 1", (end,)).fetchone()
    closing = json.loads(later[0])["print_count_before"] if later else now_count
    return counters[0], closing


def record_reading(journal: Path, at: float, print_count: int | None,
                   ribbon_remaining: int | None) -> None:
    """Keep one reading of the printer's counters in the journal (the oldest beyond
    MAX_READINGS are dropped)."""
    from cardstation.personalization.journal import Journal

    with Journal(journal, timeout=2.0) as store:
        readings = json.loads(store.meta(READINGS_KEY) or "[]")
        readings.append({"at": at, "print_count": print_count,
                         "ribbon_remaining": ribbon_remaining})
        store.set_meta(READINGS_KEY, json.dumps(readings[-MAX_READINGS:]))


def _readings(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (READINGS_KEY,)).fetchone()
    return json.loads(row[0]) if row else []


def _print_times(conn: sqlite3.Connection, start: float,
                 end: float) -> tuple[float, float, float]:
    """When the day's first and last prints began (`end` and `start` when none) and when the
    next print after the day began (each print journals its counter first; a reprint
    journals its result)."""
    printed = "(json_extract(data, '$.print_count_before') IS NOT NULL OR " \
              "json_extract(data, '$.reprints') IS NOT NULL)"
    first, last = conn.execute(f"SELECT MIN(at), MAX(at) FROM events WHERE at >= ? AND at < ? "
                               f"AND {printed}", (start, end)).fetchone()
    after = conn.execute(f"SELECT MIN(at) FROM events WHERE at >= ? AND {printed}",
                         (end,)).fetchone()[0]
    return (end if first is None else first, start if last is None else last,
            float("inf") if after is None else after)


def _ribbon(conn: sqlite3.Connection, start: float, end: float, prints_used: int,
            remaining_now: int | None) -> dict[str, int | None]:
    """The ribbon's prints left before the day's first print and after its last (readings,
    or `remaining_now` when nothing was printed since), against the prints the station made."""
    first_print, last_print, next_print = _print_times(conn, start, end)
    readings = [r for r in _readings(conn) if r.get("ribbon_remaining") is not None]
    opening = [r["ribbon_remaining"] for r in readings if r["at"] < first_print]
    closing = [r["ribbon_remaining"] for r in readings if last_print < r["at"] < next_print]
    if remaining_now is not None and next_print == float("inf"):
        closing.append(remaining_now)
    start_left = opening[-1] if opening else None
    end_left = closing[-1] if closing else None
    counted = start_left - end_left if start_left is not None and end_left is not None \
        else None
    return {"prints_used": prints_used, "remaining_start": start_left,
            "remaining_end": end_left, "ribbon": counted,
            "difference": None if counted is None else counted - prints_used,
            "remaining_now": remaining_now}


def _returns(conn: sqlite3.Connection, start: float, end: float) -> dict[str, int]:
    acknowledged = conn.execute("SELECT COUNT(*) FROM outbox WHERE status = 'delivered' AND "
                                "delivered_at >= ? AND delivered_at < ?",
                                (start, end)).fetchone()[0]
    counts = Counter({"pending": 0, "failed": 0, "withdrawn": 0})
    for status, code in conn.execute("SELECT status, last_error_code FROM outbox "
                                     "WHERE status != 'delivered'"):
        if status == "failed":
            counts["withdrawn" if code == WITHDRAWN else "failed"] += 1
        else:  # pending, or being delivered right now
            counts["pending"] += 1
    return {"acknowledged": acknowledged, **counts}


def day_report(journal: Path, day: date, station_id: str, *,
               print_count_now: int | None = None,
               ribbon_remaining_now: int | None = None) -> DayReport:
    """The reconciliation of `day` from the journal at `journal`. `print_count_now` and
    `ribbon_remaining_now` are the printer's counters read now, when the caller has them."""
    start, end = day_bounds(day)
    report = DayReport(day.isoformat(), station_id)
    conn = open_read_only(journal)
    try:
        conn.execute("BEGIN")  # one consistent state while the station writes
        fed = _first_feeds(conn, start, end)
        rejected: Counter[str] = Counter()
        station_prints = 0
        for issuance_id, at, frm, to, raw in _events(conn, start, end):
            data = json.loads(raw)
            if to == "DONE" and frm != "DONE":
                report.made.append(_made_card(conn, issuance_id, at))
            if to == "REJECTED" and frm != "REJECTED":
                code = str(data.get("reason_code") or "UNKNOWN")
                rejected[code] += 1
                report.spoiled += code == SPOILED
                bad_card = code in CARD_IS_BAD
                if bad_card or _ever_fed(conn, issuance_id):
                    report.rejected_cards += 1
                if bad_card and issuance_id not in fed and not _ever_fed(conn, issuance_id):
                    fed.add(issuance_id)  # went from the stock straight to the reject box
            if frm == to and data.get("spoiled"):
                report.spoiled += 1
            if frm == to and "reprints" in data:
                report.reprinted += 1
            if "print_count_before" in data:  # journaled with the return, or before a print
                station_prints += 1
        report.rejected_by_reason = dict(sorted(rejected.items()))
        report.blank_cards_used = len(fed)
        first, closing = _print_counts(conn, start, end, print_count_now)
        report.returns = _returns(conn, start, end)
        station_prints += report.reprinted
        report.ribbon = _ribbon(conn, start, end, station_prints, ribbon_remaining_now)
    finally:
        conn.close()
    counted = closing - first if first is not None and closing is not None else None
    if first is None and station_prints == 0:
        counted = 0  # nothing printed that day (as far as the station knows)
    report.prints = {"station": station_prints, "printer_counter_start": first,
                     "printer_counter_end": closing, "printer": counted,
                     "difference": None if counted is None else counted - station_prints}
    return report
