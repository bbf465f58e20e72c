"""The CMS simulator's card life: new applications (新增申请), fee registration (交费登记), the
instant-issuance mark (即制卡标注), hand-over and enablement (领卡启用), loss reports (临时 /
正式挂失), lifting them (解挂), cancellation (注销) and replacement (补换卡).

The CMS's rules, enforced here as a province's CMS does: one outstanding card per holder (a
holder with an application or a card that is not cancelled gets no new application: that is
a replacement); no enablement while a temporary card of the holder is out; a replacement only
after a formal loss report. A mixin of the Ledger: the same lock, the same state file, and every
refusal raised before anything changes.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from cardstation.drivers.redaction import mask_id_number
from cardstation.personalization.intake import check_intake
from cardstation.personalization.model import Application, IntakeApplication
from cardstation.personalization.ports.cms import LOSS_KINDS, REPLACEMENT_KINDS
from cardstation.personalization.rules import card_number_check_char

_CARD_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
_VALID_YEARS = 10  # social security cards are issued for ten years


def _today() -> dt.date:
    return dt.date.today()


class CardLifeMixin:
    """Card-life operations over the Ledger's applications (see the module docstring)."""

    # provided by the Ledger
    _lock: Any
    _apps: dict[str, dict[str, Any]]
    _temporary: dict[str, dict[str, Any]]
    _returns_by_key: dict[str, dict[str, Any]]

    def _save(self) -> None: ...
    def _entry(self, id_number: str) -> dict[str, Any]: ...

    # ---- helpers -----------------------------------------------------------------------

    def _refuse(self, status: int, code: str, message: str) -> Exception:
        from cardstation.simulators.cms.ledger import LedgerError

        return LedgerError(status, code, message)

    def _new_card_number(self) -> str:
        taken = {e["app"].card_number for e in self._apps.values()}
        for e in self._apps.values():
            taken |= {c["card_number"] for c in e.get("previous_cards") or ()}
        rng = random.Random(f"cms-card-numbers-{len(taken)}")
        while True:
            body = rng.choice(_CARD_LETTERS) + f"{rng.randint(0, 9_999_999):07d}"
            number = body + card_number_check_char(body)
            if number not in taken:
                return number

    def _application_no(self) -> str:
        count = sum(1 for e in self._apps.values() if e.get("application_no"))
        count += sum(len(e.get("previous_cards") or ()) for e in self._apps.values())
        return f"SQ{count + 1:08d}"

    def _new_card(self, person: Application | IntakeApplication, bank_name: str
                  ) -> Application:
        today = _today()
        issue = today.strftime("%Y%m%d")
        expiry = today.replace(year=today.year + _VALID_YEARS).strftime("%Y%m%d")
        region = person.id_number[:6]
        return Application(
            id_number=person.id_number, name=person.name, sex=person.sex,
            nation=person.nation, birth_date=person.birth_date,
            birthplace=getattr(person, "birthplace", region), card_number=self._new_card_number(),
            bank_name=bank_name, batch=f"{region}{issue}{len(self._apps) % 1000:03d}",
            issue_date=issue, expiry_date=expiry, photo=person.photo)

    def _temporary_out(self, id_number: str) -> bool:
        return any(t["holder_id"] == id_number and t["status"] == "issued"
                   for t in self._temporary.values())

    def _made_card_id_code(self, entry: dict[str, Any]) -> str:
        item = self._returns_by_key.get(entry.get("return_key") or "")
        return str(item["record"]["card_id_code"]) if item else ""

    @staticmethod
    def card_state_of(entry: dict[str, Any]) -> str:
        """The port's CARD_STATES name of an entry."""
        if entry.get("card_state"):
            return str(entry["card_state"])
        return {"not_marked": "applied", "ready": "ready", "claimed": "in_making",
                "made": "made", "failed": "failed"}[entry["status"]]

    def _masked(self, id_number: str) -> str:
        return mask_id_number(id_number)

    # ---- operations ----------------------------------------------------------------------

    def submit_application(self, key: str, station: str, application: IntakeApplication
                           ) -> dict[str, Any]:
        findings = check_intake(application)
        if findings:
            fields = ", ".join(sorted({f.field for f in findings}))
            raise self._refuse(422, "invalid_application",
                               f"the new application is incomplete or invalid: {fields}")
        with self._lock:
            entry = self._apps.get(application.id_number)
            if entry is not None and entry.get("intake_key") == key:
                return {"application_no": entry["application_no"], "duplicate": True}
            if entry is not None and self.card_state_of(entry) != "cancelled":
                raise self._refuse(409, "holder_has_card",
                                   f"holder {self._masked(application.id_number)} already has "
                                   f"a card or an application ({self.card_state_of(entry)}); "
                                   "one card per holder: a new card is a replacement")
            previous = list(entry.get("previous_cards") or ()) if entry else []
            if entry is not None:
                previous.append(self._card_record(entry, "cancelled"))
            number = self._application_no()
            self._apps[application.id_number] = {
                "app": self._new_card(application, application.bank_name),
                "status": "not_marked", "fee_registered": False, "claimed_by": None,
                "claimed_at": None, "city_centre_received_at": None, "return_key": None,
                "failure_key": None, "card_state": None, "application_no": number,
                "intake_key": key, "submitted_by": station, "replaces": "",
                "previous_cards": previous,
                "intake": {k: v for k, v in application.to_dict().items() if k != "photo"},
            }
            self._save()
            return {"application_no": number, "duplicate": False}

    def _card_record(self, entry: dict[str, Any], state: str) -> dict[str, Any]:
        return {"card_number": entry["app"].card_number,
                "card_id_code": self._made_card_id_code(entry), "state": state,
                "until": dt.datetime.now().astimezone().isoformat(timespec="seconds")}

    def register_fee(self, id_number: str) -> dict[str, Any]:
        with self._lock:
            entry = self._entry(id_number)
            if entry["fee_registered"]:
                return {"status": "fee_registered", "duplicate": True}
            if entry["status"] != "not_marked":
                raise self._refuse(409, "card_state_invalid",
                                   f"application {self._masked(id_number)} is "
                                   f"{self.card_state_of(entry)}: no fee to register")
            entry["fee_registered"] = True
            self._save()
            return {"status": "fee_registered", "duplicate": False}

    def mark_instant_issuance(self, id_number: str) -> dict[str, Any]:
        with self._lock:
            entry = self._entry(id_number)
            if entry["status"] != "not_marked":
                state = self.card_state_of(entry)
                if state in ("ready", "in_making"):
                    return {"status": "ready", "duplicate": True}
                raise self._refuse(409, "card_state_invalid",
                                   f"application {self._masked(id_number)} is {state}: "
                                   "nothing to mark")
            if not entry["fee_registered"]:
                raise self._refuse(409, "card_state_invalid",
                                   f"application {self._masked(id_number)} has no fee "
                                   "registration (交费登记) yet")
            entry["status"] = "ready"
            self._save()
            return {"status": "ready", "duplicate": False}

    def card_life(self, id_number: str) -> dict[str, Any]:
        with self._lock:
            entry = self._entry(id_number)
            app: Application = entry["app"]
            return {"id_number": id_number, "name": app.name,
                    "state": self.card_state_of(entry), "card_number": app.card_number,
                    "card_id_code": self._made_card_id_code(entry), "bank_name": app.bank_name,
                    "fee_registered": bool(entry["fee_registered"]),
                    "temporary_card_out": self._temporary_out(id_number),
                    "replaces": entry.get("replaces") or "",
                    "application_no": entry.get("application_no") or ""}

    def enable_card(self, id_number: str, card_id_code: str) -> dict[str, Any]:
        with self._lock:
            entry = self._entry(id_number)
            state = self.card_state_of(entry)
            if state not in ("made", "active"):
                raise self._refuse(409, "card_state_invalid",
                                   f"the card of {self._masked(id_number)} is {state}: only a "
                                   "card that was made (数据回盘 received) can be handed over")
            if card_id_code != self._made_card_id_code(entry):
                raise self._refuse(409, "card_mismatch",
                                   f"the card presented is not the card made for "
                                   f"{self._masked(id_number)}")
            if state == "active":
                return {"state": "active", "duplicate": True}
            if self._temporary_out(id_number):
                raise self._refuse(409, "temporary_card_outstanding",
                                   f"holder {self._masked(id_number)} has a temporary card out; "
                                   "recall it before enabling the card")
            entry.update(card_state="active", enabled_at=_today().isoformat())
            self._save()
            return {"state": "active", "duplicate": False}

    def _move(self, id_number: str, target: str, allowed: tuple[str, ...], why: str
              ) -> dict[str, Any]:
        """The card to `target` from one of `allowed`; already there is acknowledged."""
        with self._lock:
            entry = self._entry(id_number)
            state = self.card_state_of(entry)
            if state == target:
                return {"state": target, "duplicate": True}
            if state not in allowed:
                raise self._refuse(409, "card_state_invalid",
                                   f"the card of {self._masked(id_number)} is {state}: {why}")
            entry["card_state"] = target
            self._save()
            return {"state": target, "duplicate": False}

    def report_loss(self, id_number: str, kind: str) -> dict[str, Any]:
        if kind not in LOSS_KINDS:
            raise self._refuse(400, "invalid_field", f"kind must be one of {', '.join(LOSS_KINDS)}")
        # a temporary report may become formal, never the other way
        return self._move(id_number, f"lost_{kind}", ("active", "lost_temporary"),
                          "only an enabled card can be reported lost")

    def lift_loss(self, id_number: str) -> dict[str, Any]:
        return self._move(id_number, "active", ("lost_temporary", "lost_formal"),
                          "there is no loss report to lift")

    def cancel_card(self, id_number: str, reason: str) -> dict[str, Any]:
        with self._lock:
            answer = self._move(id_number, "cancelled",
                                ("made", "active", "lost_temporary", "lost_formal"),
                                "there is no card to cancel")
            if not answer["duplicate"]:
                self._apps[id_number]["cancel_reason"] = reason
                self._save()
            return answer

    def apply_replacement(self, id_number: str, kind: str, bank_name: str = ""
                          ) -> dict[str, Any]:
        if kind not in REPLACEMENT_KINDS:
            raise self._refuse(400, "invalid_field",
                               f"kind must be one of {', '.join(REPLACEMENT_KINDS)}")
        with self._lock:
            entry = self._entry(id_number)
            state = self.card_state_of(entry)
            if entry.get("replaces") and state in ("applied", "ready"):
                return {"application_no": entry["application_no"], "duplicate": True}
            if state != "lost_formal":
                raise self._refuse(409, "formal_loss_required",
                                   f"the card of {self._masked(id_number)} is {state}: a "
                                   "replacement needs a formal loss report (正式挂失) first")
            old: Application = entry["app"]
            previous = [*(entry.get("previous_cards") or ()), self._card_record(entry,
                                                                                 "replaced")]
            number = self._application_no()
            entry.update(app=self._new_card(old, bank_name or old.bank_name),
                         status="not_marked", fee_registered=False, claimed_by=None,
                         claimed_at=None, city_centre_received_at=None, return_key=None,
                         failure_key=None, card_state=None, application_no=number,
                         replaces=old.card_number, replacement_kind=kind,
                         previous_cards=previous)
            self._save()
            return {"application_no": number, "duplicate": False}
