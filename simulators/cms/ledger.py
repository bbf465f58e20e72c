"""The CMS simulator's ledger: applications, claims, returns, failures and conflicts.

All state changes go through one lock, so concurrent stations (threads of the HTTP server) see
one order of events. Every failed operation raises `LedgerError` before touching anything, so a
rejected request changes nothing. When a state file is given, the ledger is written to it after
every change (atomically: temporary file + rename), so a killed simulator restarts with what it
had acknowledged: an acknowledged return must never be lost, on either side.

Messages never contain a full ID number (`mask_id_number`): they travel into station logs.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import threading
from pathlib import Path
from typing import Any

from cardstation.drivers.redaction import mask_id_number
from cardstation.personalization.model import Application, ReturnRecord
from cardstation.simulators.cms.card_life import CardLifeMixin

STATUSES = ("ready", "not_marked", "claimed", "made", "failed")
STATE_VERSION = 1

# Per-application bookkeeping kept next to the Application fields in the ledger dump.
_ENTRY_FIELDS = (
    "status",
    "fee_registered",
    "claimed_by",
    "claimed_at",
    "city_centre_received_at",
    "return_key",
    "failure_key",
    # the card's life after the return (simulators/cms/card_life.py)
    "card_state",
    "application_no",
    "intake_key",
    "submitted_by",
    "replaces",
    "replacement_kind",
    "previous_cards",
    "intake",
    "enabled_at",
    "cancel_reason",
)


class LedgerError(Exception):
    """A rejected request: HTTP status, machine code and an operator-readable message."""

    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.details}


def _now() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


class Ledger(CardLifeMixin):
    """Thread-safe store of the CMS side of instant issuance (see module docstring); the card's
    life after it comes from CardLifeMixin."""

    def __init__(self, state_path: str | Path | None = None) -> None:
        self._lock = threading.RLock()
        self._state_path = Path(state_path) if state_path else None
        self._apps: dict[str, dict[str, Any]] = {}  # id_number -> entry (see _entry)
        self._returns: list[dict[str, Any]] = []
        self._returns_by_key: dict[str, dict[str, Any]] = {}
        self._failures: list[dict[str, Any]] = []
        self._failures_by_key: dict[str, dict[str, Any]] = {}
        self._conflicts: list[dict[str, Any]] = []
        self._temporary: dict[str, dict[str, Any]] = {}  # card id code -> temporary card

    # ---- persistence -------------------------------------------------------------------

    def load(self) -> bool:
        """Load the state file if it exists; True if loaded. Raises ValueError if unreadable."""
        if self._state_path is None or not self._state_path.exists():
            return False
        try:
            data = json.loads(self._state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"CMS state file {self._state_path} is unreadable: {exc}") from exc
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise ValueError(f"CMS state file {self._state_path} has an unknown format")
        try:
            apps = {}
            for id_number, entry in data["applications"].items():
                app = Application.from_dict(entry)
                if app.id_number != id_number or entry.get("status") not in STATUSES:
                    raise ValueError("application entries are inconsistent")
                apps[id_number] = {"app": app, **{k: entry.get(k) for k in _ENTRY_FIELDS}}
            returns = list(data["returns"])
            returns_by_key = {r["idempotency_key"]: r for r in returns}
            failures = list(data["failures"])
            failures_by_key = {f["idempotency_key"]: f for f in failures}
            conflicts = list(data["conflicts"])
            temporary = dict(data.get("temporary_cards", {}))
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"CMS state file {self._state_path} is damaged: {exc}") from exc
        with self._lock:
            self._apps, self._returns, self._returns_by_key = apps, returns, returns_by_key
            self._failures, self._failures_by_key = failures, failures_by_key
            self._conflicts = conflicts
            self._temporary = temporary
        return True

    def _save(self) -> None:
        # Called with the lock held, after every change and before the caller is answered, so
        # an acknowledgement is only ever sent for a change that is on disk.
        if self._state_path is None:
            return
        tmp = self._state_path.with_name(self._state_path.name + ".tmp")
        payload = json.dumps(self._dump(photos=True), ensure_ascii=False, indent=1)
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self._state_path)

    def _dump(self, *, photos: bool) -> dict[str, Any]:
        apps: dict[str, Any] = {}
        for id_number, entry in self._apps.items():
            view = entry["app"].to_dict()
            if not photos:
                view.pop("photo")
            view.update({k: entry.get(k) for k in _ENTRY_FIELDS})
            apps[id_number] = view
        return {
            "version": STATE_VERSION,
            "applications": apps,
            "claims": {
                i: {"station": e["claimed_by"], "claimed_at": e["claimed_at"]}
                for i, e in self._apps.items()
                if e["claimed_by"]
            },
            "returns": copy.deepcopy(self._returns),
            "failures": copy.deepcopy(self._failures),
            "conflicts": copy.deepcopy(self._conflicts),
            "temporary_cards": copy.deepcopy(self._temporary),
        }

    def snapshot(self, *, photos: bool = True) -> dict[str, Any]:
        """Everything, as plain JSON data (a copy): applications, claims, returns, ..."""
        with self._lock:
            return self._dump(photos=photos)

    # ---- admin -------------------------------------------------------------------------

    def put_application(
        self, app: Application, status: str = "ready", *, fee_registered: bool = True
    ) -> None:
        """Add or replace an application (admin/test); any claim on it is dropped."""
        self.put_applications([(app, status, fee_registered)])

    def put_applications(self, items: list[tuple[Application, str, bool]]) -> None:
        """Add or replace several (application, status, fee_registered) with one save."""
        for _, status, _ in items:
            if status not in STATUSES:
                raise LedgerError(
                    400, "invalid_field", f"status must be one of {', '.join(STATUSES)}"
                )
        with self._lock:
            for app, status, fee_registered in items:
                self._apps[app.id_number] = {
                    "app": app,
                    "status": status,
                    "fee_registered": fee_registered,
                    "claimed_by": None,
                    "claimed_at": None,
                    "city_centre_received_at": None,
                    "return_key": None,
                    "failure_key": None,
                }
            self._save()

    def has_application(self, id_number: str) -> bool:
        with self._lock:
            return id_number in self._apps

    # ---- station operations ------------------------------------------------------------

    def _entry(self, id_number: str) -> dict[str, Any]:
        entry = self._apps.get(id_number)
        if entry is None:
            raise LedgerError(
                404,
                "unknown_application",
                f"no application for ID number {mask_id_number(id_number)}",
            )
        return entry

    @staticmethod
    def _require_marked(entry: dict[str, Any], id_number: str) -> None:
        masked = mask_id_number(id_number)
        if entry["status"] == "not_marked":
            raise LedgerError(
                409, "not_marked", f"application {masked} is not marked for instant issuance"
            )
        if not entry["fee_registered"]:
            raise LedgerError(409, "not_marked", f"application {masked} has no fee registration")

    def get_application(self, id_number: str) -> dict[str, Any]:
        """Application.to_dict() plus "status"; 404 unknown, 409 not marked / no fee."""
        with self._lock:
            entry = self._entry(id_number)
            self._require_marked(entry, id_number)
            return {**entry["app"].to_dict(), "status": entry["status"]}

    def claim(self, id_number: str, station: str) -> dict[str, Any]:
        """Claim for `station`; idempotent for the holder, 409 for anyone else."""
        with self._lock:
            entry = self._entry(id_number)
            self._require_marked(entry, id_number)
            self._require_not_made(entry, id_number)
            masked = mask_id_number(id_number)
            if entry["claimed_by"] not in (None, station):
                raise LedgerError(
                    409,
                    "claimed_elsewhere",
                    f"application {masked} is claimed by station {entry['claimed_by']}",
                    station=entry["claimed_by"],
                )
            if entry["status"] == "failed":
                raise LedgerError(
                    409,
                    "restore_required",
                    f"application {masked} has a failure report; restore it first "
                    "(失败数据处理 → 恢复申请)",
                )
            if entry["claimed_by"] != station:
                entry.update(status="claimed", claimed_by=station, claimed_at=_now())
                self._save()
            return {"status": "claimed", "station": station, "claimed_at": entry["claimed_at"]}

    def claimed_application(self, id_number: str, station: str) -> Application:
        """The application `station` holds the claim of (409 claimed_elsewhere / not_claimed)."""
        with self._lock:
            entry = self._entry(id_number)
            self._require_marked(entry, id_number)
            masked = mask_id_number(id_number)
            if entry["claimed_by"] != station:
                code = "not_claimed" if entry["claimed_by"] is None else "claimed_elsewhere"
                raise LedgerError(409, code, f"application {masked} is not claimed by station "
                                  f"{station}")
            app: Application = entry["app"]
            return app

    @staticmethod
    def _require_not_made(entry: dict[str, Any], id_number: str) -> None:
        if entry["status"] == "made":
            raise LedgerError(
                409,
                "already_made",
                f"a card for application {mask_id_number(id_number)} was already made "
                f"(return received {entry['city_centre_received_at']})",
            )

    def submit_return(self, key: str, station: str, record: ReturnRecord) -> dict[str, Any]:
        """Accept a 数据回盘 once per idempotency key; see the module and README rules."""
        with self._lock:
            payload = record.to_dict()
            previous = self._returns_by_key.get(key)
            if previous is not None:
                return self._same_return(
                    previous, key, station, record.id_number, payload,
                    "the idempotency key was already used for a different return",
                )  # fmt: skip
            entry = self._entry(record.id_number)
            app: Application = entry["app"]
            masked = mask_id_number(record.id_number)
            if entry["status"] == "made":
                # The same card reported under a new key (e.g. a station that lost its outbox
                # key) is still one card: acknowledged as the same return.
                return self._same_return(
                    self._returns_by_key[entry["return_key"]], key, station, record.id_number,
                    payload, f"application {masked} already has a different return",
                )  # fmt: skip
            if record.card_number != app.card_number:
                raise self._conflict(
                    "return",
                    key,
                    station,
                    record.id_number,
                    payload,
                    None,
                    f"the return's card number differs from application {masked}'s",
                )
            self._require_marked(entry, record.id_number)
            if entry["claimed_by"] not in (None, station):
                raise LedgerError(
                    409,
                    "claimed_elsewhere",
                    f"application {masked} is claimed by station {entry['claimed_by']}",
                    station=entry["claimed_by"],
                )
            received = _now()
            item = {
                "ack": f"ACK{len(self._returns) + 1:08d}",
                "idempotency_key": key,
                "station": station,
                "id_number": record.id_number,
                "record": payload,
                "received_at": received,
            }
            self._returns.append(item)
            self._returns_by_key[key] = item
            entry.update(status="made", city_centre_received_at=received, return_key=key)
            if entry["claimed_by"] is None:
                entry.update(claimed_by=station, claimed_at=received)
            self._save()
            return {"ack": item["ack"], "duplicate": False}

    def report_failure(self, key: str, station: str, id_number: str, reason: str) -> dict[str, Any]:
        """Record a failure return (Henan: CardNum, CardID, Name, PCH + reason)."""
        with self._lock:
            previous = self._failures_by_key.get(key)
            request = {"station": station, "id_number": id_number, "reason": reason}
            if previous is not None:
                if all(previous[k] == v for k, v in request.items()):
                    return {"status": "failed", "duplicate": True}
                raise self._conflict(
                    "failure",
                    key,
                    station,
                    id_number,
                    request,
                    previous,
                    "the idempotency key was already used for a different failure report",
                )
            entry = self._entry(id_number)
            self._require_not_made(entry, id_number)
            if entry["claimed_by"] not in (None, station):
                raise LedgerError(
                    409,
                    "claimed_elsewhere",
                    f"application {mask_id_number(id_number)} is claimed by station "
                    f"{entry['claimed_by']}",
                    station=entry["claimed_by"],
                )
            app: Application = entry["app"]
            item = {
                "idempotency_key": key,
                **request,
                "card_number": app.card_number,
                "name": app.name,
                "batch": app.batch,
                "received_at": _now(),
            }
            self._failures.append(item)
            self._failures_by_key[key] = item
            entry.update(status="failed", failure_key=key)
            self._save()
            return {"status": "failed", "duplicate": False}

    def restore(self, id_number: str) -> dict[str, Any]:
        """失败数据处理 → 恢复申请: back to ready, claim released (history is kept)."""
        with self._lock:
            entry = self._entry(id_number)
            if entry["status"] == "not_marked":
                raise LedgerError(
                    409,
                    "not_marked",
                    f"application {mask_id_number(id_number)} is not marked for instant "
                    "issuance; mark it instead of restoring it",
                )
            entry.update(
                status="ready",
                claimed_by=None,
                claimed_at=None,
                city_centre_received_at=None,
                return_key=None,
                failure_key=None,
                card_state=None,
            )
            self._save()
            return {"status": "ready"}

    # ---- temporary cards (临时卡) ---------------------------------------------------------

    def _outstanding_temporary(self, holder: str, code: str) -> dict[str, Any] | None:
        """The holder's issued temporary card if it is this one; 409 if it is another."""
        for existing in self._temporary.values():
            if existing["holder_id"] == holder and existing["status"] == "issued":
                if existing["card_id_code"] == code:
                    return existing
                raise LedgerError(
                    409, "temporary_card_outstanding",
                    f"holder {mask_id_number(holder)} already has a temporary card that was "
                    "not returned; recall it first")
        return None

    def check_temporary(self, card_id_code: str, holder_id: str) -> dict[str, Any]:
        """Would `record_temporary` accept this card for this holder? Changes nothing."""
        with self._lock:
            existing = self._outstanding_temporary(holder_id, card_id_code)
            return {"status": "ok", "issued": existing is not None}

    def record_temporary(self, record: dict[str, Any]) -> dict[str, Any]:
        """A temporary card was issued. One outstanding temporary card per holder: the holder
        must return it before another is issued (business-flows.md section 3)."""
        with self._lock:
            code, holder = record["card_id_code"], record["holder_id"]
            existing = self._outstanding_temporary(holder, code)
            if existing is not None:
                existing.update(valid_to=record["valid_to"], rewritten_at=_now())
                self._save()
                return {"status": "issued", "duplicate": True}
            self._temporary[code] = {**record, "status": "issued", "issued_at": _now(),
                                     "recalled_at": None}
            self._save()
            return {"status": "issued", "duplicate": False}

    def get_temporary(self, card_id_code: str) -> dict[str, Any]:
        with self._lock:
            entry = self._temporary.get(card_id_code)
            if entry is None:
                raise LedgerError(404, "temporary_card_unknown",
                                  "no temporary card with this card identification code")
            return copy.deepcopy(entry)

    def recall_temporary(self, card_id_code: str, station: str) -> dict[str, Any]:
        with self._lock:
            entry = self._temporary.get(card_id_code)
            if entry is None:
                raise LedgerError(404, "temporary_card_unknown",
                                  "no temporary card with this card identification code")
            if entry["status"] == "recalled":
                return {"status": "recalled", "duplicate": True}
            entry.update(status="recalled", recalled_at=_now(), recalled_by=station)
            self._save()
            return {"status": "recalled", "duplicate": False}

    def void_temporary(self, card_id_code: str, station: str, holder_id: str) -> dict[str, Any]:
        """Withdraw a temporary card the station recorded but could not finish writing: it is
        no longer issued (the holder may be given another). Only the recording station may, and
        only while the card is issued to that holder; a repeat is acknowledged."""
        with self._lock:
            entry = self._temporary.get(card_id_code)
            if entry is None or entry["holder_id"] != holder_id:
                raise LedgerError(404, "temporary_card_unknown",
                                  "no temporary card with this card identification code for "
                                  "this holder")
            if entry["status"] == "voided":
                return {"status": "voided", "duplicate": True}
            if entry["status"] != "issued" or entry["station"] != station:
                raise LedgerError(409, "temporary_card_not_voidable",
                                  f"the temporary card is {entry['status']} (recorded by "
                                  f"station {entry['station']}); only the recording station "
                                  "may withdraw an issued card")
            entry.update(status="voided", voided_at=_now(), voided_by=station)
            self._save()
            return {"status": "voided", "duplicate": False}

    def _same_return(self, existing: dict[str, Any], key: str, station: str, id_number: str,
                     payload: dict[str, Any], why: str) -> dict[str, Any]:
        """Acknowledge a repeat of `existing` again; anything else is a recorded conflict."""
        if existing["record"] == payload and existing["station"] == station:
            return {"ack": existing["ack"], "duplicate": True}
        raise self._conflict("return", key, station, id_number, payload, existing, why)

    def _conflict(
        self,
        kind: str,
        key: str,
        station: str,
        id_number: str,
        payload: dict[str, Any],
        existing: dict[str, Any] | None,
        why: str,
    ) -> LedgerError:
        # Conflicts are evidence (two different records for one card, or a mistaken key):
        # kept in the ledger for the administrator, while the request itself changes nothing.
        self._conflicts.append(
            {
                "kind": kind,
                "idempotency_key": key,
                "station": station,
                "id_number": id_number,
                "submitted": payload,
                "existing": copy.deepcopy(existing),
                "reason": why,
                "at": _now(),
            }
        )
        self._save()
        return LedgerError(409, "return_conflict", f"{why} (key {key})")
