"""The reference CMS adapter's card-life calls (the port's CmsCardLife): new applications, fee
registration, the instant-issuance mark, hand-over and enablement, loss reports, lifting,
cancellation and replacement, over the CMS simulator's HTTP/JSON protocol. A mixin of
CmsClient: the same transport, errors and masking (personalization/cms.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from cardstation.drivers.redaction import mask_id_number
from cardstation.personalization.model import IntakeApplication
from cardstation.personalization.ports.cms import CardLife, CmsProtocolError

log = logging.getLogger("cardstation.personalization.cms")


def _seg(value: str) -> str:
    return quote(value, safe="")


class CardLifeClientMixin:
    """CmsCardLife over HTTP/JSON (see the module docstring)."""

    # CmsClient's: the station id, the transport and its protocol error
    station_id: str
    _call: Callable[[str, str, dict[str, Any] | None, str, str], dict[str, Any]]
    _protocol: Callable[..., CmsProtocolError]

    def _number(self, data: dict[str, Any], op: str) -> str:
        number = data.get("application_no")
        if not isinstance(number, str) or not number:
            raise self._protocol(f"its answer to the {op} has no application number", op)
        return number

    def submit_application(self, application: IntakeApplication, idempotency_key: str) -> str:
        body = {"idempotency_key": idempotency_key, "station": self.station_id,
                "application": application.to_dict()}
        data = self._call("POST", "/intake/applications", body, "new application",
                          application.id_number)
        log.info("CMS: new application for %s", mask_id_number(application.id_number))
        return self._number(data, "new application")

    def register_fee(self, id_number: str) -> None:
        self._call("POST", f"/applications/{_seg(id_number)}/fee", {"station": self.station_id},
                   "fee registration", id_number)

    def mark_instant_issuance(self, id_number: str) -> None:
        self._call("POST", f"/applications/{_seg(id_number)}/mark",
                   {"station": self.station_id}, "instant-issuance mark", id_number)

    def card_life(self, id_number: str) -> CardLife:
        data = self._call("GET", f"/cards/{_seg(id_number)}", None, "card look-up", id_number)
        try:
            return CardLife(
                id_number=str(data["id_number"]), name=str(data["name"]),
                state=str(data["state"]), card_number=str(data.get("card_number") or ""),
                card_id_code=str(data.get("card_id_code") or ""),
                bank_name=str(data.get("bank_name") or ""),
                fee_registered=bool(data.get("fee_registered")),
                temporary_card_out=bool(data.get("temporary_card_out")),
                replaces=str(data.get("replaces") or ""))
        except KeyError as exc:
            raise self._protocol(f"its card record lacks {exc}", "card look-up") from None

    def enable_card(self, id_number: str, card_id_code: str) -> None:
        self._call("POST", f"/cards/{_seg(id_number)}/enable",
                   {"station": self.station_id, "card_id_code": card_id_code}, "enablement",
                   id_number)
        log.info("CMS: card of %s enabled", mask_id_number(id_number))

    def report_loss(self, id_number: str, kind: str) -> None:
        self._call("POST", f"/cards/{_seg(id_number)}/loss",
                   {"station": self.station_id, "kind": kind}, "loss report", id_number)

    def lift_loss(self, id_number: str) -> None:
        self._call("POST", f"/cards/{_seg(id_number)}/lift", {"station": self.station_id},
                   "loss lift", id_number)

    def cancel_card(self, id_number: str, reason: str) -> None:
        self._call("POST", f"/cards/{_seg(id_number)}/cancel",
                   {"station": self.station_id, "reason": reason}, "cancellation", id_number)

    def apply_replacement(self, id_number: str, kind: str, bank_name: str = "") -> str:
        data = self._call("POST", f"/cards/{_seg(id_number)}/replacement",
                          {"station": self.station_id, "kind": kind, "bank_name": bank_name},
                          "replacement", id_number)
        return self._number(data, "replacement")
