"""Window services on the desk reader: read a card, check a returned card, PINs, temporary cards.

PINs come from a `PinSource`: the PIN pad prompts the holder and returns the PIN block, which is
decrypted only here, at the last moment, and goes straight into the card's APDU (the APDU trace
masks it). Nothing in this module logs a PIN, and operator-facing errors name the cause and the
remedy (business-flows.md section 3: 6 wrong PINs lock; a new PIN may not be 123456).
"""

from __future__ import annotations

import calendar
import datetime as dt
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from cardstation.drivers.pcsc.errors import (
    AuthenticationBlocked,
    CardStatusError,
    FileNotFound,
    FunctionNotSupported,
    IncorrectParameters,
    PcscError,
    UnresponsiveCard,
    VerificationFailed,
)
from cardstation.drivers.pcsc.ssc import ITEMS, BasicInfo, bcd_pin, decode_value
from cardstation.drivers.pcsc.transport import ApduTransport
from cardstation.logs import mask_id_number

from .chip import ChipSession
from .cms import CmsClient, CmsError
from .keys.service import KeyService
from .rules import check_id_number, check_name, split_name_gbk

INITIAL_PIN = "123456"
PinSource = Callable[[str], str]  # prompt id (ENTER_PIN, ENTER_NEW_PIN, ...) -> PIN digits
TEMPORARY_MONTHS = 3


class WindowError(RuntimeError):
    """A window service could not be done; `reason` is stable, the message is for people."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class CardReading:
    info: BasicInfo
    kind: str  # "formal" | "temporary"
    generation: int

    def to_dict(self, show_id: bool = False) -> dict[str, object]:
        info = {k: v for k, v in asdict(self.info).items() if k != "extra"}
        if not show_id:
            info["id_number"] = mask_id_number(info["id_number"]) if info["id_number"] else ""
        return {"kind": self.kind, "generation": self.generation, **info}


@dataclass(frozen=True)
class TemporaryCard:
    card_id_code: str
    holder_id_masked: str
    valid_from: str
    valid_to: str
    rewritten: bool = False


def add_months(day: dt.date, months: int) -> dt.date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    return day.replace(year=year, month=month,
                       day=min(day.day, calendar.monthrange(year, month)[1]))


def _pin_error(exc: CardStatusError) -> WindowError:
    if isinstance(exc, VerificationFailed):
        left = exc.tries_left
        if left == 0:
            return WindowError("pin_locked", "wrong PIN — the PIN is now locked after 6 wrong "
                               "tries: unblock it (解锁) at the window with the card and ID")
        return WindowError("wrong_pin", f"wrong PIN — {left} tries left before it locks")
    if isinstance(exc, AuthenticationBlocked):
        return WindowError("pin_locked", "the PIN is locked (6 wrong tries): unblock it (解锁) "
                           "at the window with the card and the holder's ID")
    if isinstance(exc, IncorrectParameters):
        return WindowError("pin_not_allowed", "the card refused the new PIN (the initial PIN "
                           "123456 may not be kept): choose another")
    return WindowError("card_refused", str(exc))


class WindowServices:
    def __init__(self, open_desk: Callable[[], ApduTransport], keys: KeyService,
                 cms: CmsClient, terminal_number: str = "",
                 today: Callable[[], dt.date] = dt.date.today) -> None:
        self.open_desk = open_desk
        self.keys = keys
        self.cms = cms
        self.terminal_number = terminal_number
        self.today = today

    @contextmanager
    def _card(self) -> Iterator[ChipSession]:
        transport: ApduTransport | None = None
        try:
            transport = self.open_desk()
            self._connect(transport)
        except BaseException as exc:
            if transport is not None:
                transport.close()
            if isinstance(exc, PcscError):
                raise WindowError("no_card", f"{exc} — insert the card into the desk reader, "
                                  "chip first and facing up") from None
            raise
        try:
            session = ChipSession(transport, self.keys)
            session.open()
            yield session
        except PcscError as exc:
            raise WindowError("card_error", f"{exc} — if it keeps failing, clean the chip; a "
                              "card that still cannot be read is treated as broken") from None
        finally:
            transport.close()  # unpowers the chip and releases the PC/SC context

    @staticmethod
    def _connect(transport: ApduTransport, settle: float = 1.0) -> None:
        """Connect, giving a card just pushed into the reader a moment to answer."""
        deadline = time.monotonic() + settle
        while True:
            try:
                transport.connect()
                return
            except UnresponsiveCard:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)

    # -- reading --------------------------------------------------------------------------
    def _authenticator(self, session: ChipSession) -> Callable[..., None]:
        def authenticate(_card: object, key_id: int) -> None:
            session.authenticate(key_id)

        return authenticate

    def _kind(self, session: ChipSession) -> str:
        try:
            session.card.read_pan()
        except (FileNotFound, FunctionNotSupported, ValueError):
            return "temporary"  # temporary cards have no bank application
        except CardStatusError:
            return "temporary"
        return "formal"

    def read_card(self) -> CardReading:
        """读卡: the 11 iReadCardBas fields, temporary vs formal, generation."""
        with self._card() as session:
            info = session.card.read_basic_info(self._authenticator(session),
                                                self.terminal_number)
            kind = self._kind(session)
            version = info.spec_version[:1]
            generation = int(version) if version.isdigit() else 0
            return CardReading(info, kind, generation)

    def verify_returned_card(self, id_number: str) -> CardReading:
        """回执验卡: the card in the reader must be this holder's."""
        reading = self.read_card()
        if reading.info.id_number != id_number:
            raise WindowError("wrong_card", "this card does not belong to the holder "
                              f"{mask_id_number(id_number)}: check the card number by hand")
        return reading

    # -- PIN ------------------------------------------------------------------------------
    def verify_pin(self, pins: PinSource) -> None:
        with self._card() as session:
            session.card.select_ssse()
            try:
                session.card.verify_pin(pins("ENTER_PIN"))
            except CardStatusError as exc:
                raise _pin_error(exc) from None

    @staticmethod
    def _new_pin(pins: PinSource) -> str:
        new = pins("ENTER_NEW_PIN")
        if new == INITIAL_PIN:
            raise WindowError("pin_not_allowed", "the new PIN may not be the initial PIN "
                              "123456: choose another")
        try:
            bcd_pin(new)
        except ValueError:
            raise WindowError("pin_format", "a PIN is 4 to 16 digits") from None
        if pins("CONFIRM_NEW_PIN") != new:
            raise WindowError("pin_mismatch", "the two new PINs differ: enter them again")
        return new

    def change_pin(self, pins: PinSource) -> None:
        """修改: old PIN, then the new one twice, all from the PIN pad."""
        with self._card() as session:
            session.card.select_ssse()
            old = pins("ENTER_PIN")
            new = self._new_pin(pins)
            try:
                session.card.change_pin(old, new)
            except CardStatusError as exc:
                raise _pin_error(exc) from None

    def unblock_pin(self) -> None:
        """解锁: restores the tries (the PIN stays what it was), MAC from the key service."""
        with self._card() as session:
            assert session.facts is not None
            session.card.select_ssse()
            challenge = session.card.get_challenge(8)
            mac = self.keys.unblock_mac(session.card.t.atr, session.facts.city6, challenge,
                                        session.facts.algorithm)
            try:
                session.card.unblock_pin(mac)
            except CardStatusError as exc:
                raise WindowError("unblock_refused", f"the card refused the unblock: {exc}") \
                    from None

    def _reload_pin(self, session: ChipSession, new: str) -> None:
        """PIN reload after external authentication with the PIN-reload key (06).
        APDU `80 5E 00 00 Lc <new BCD>`: the simulator's proposal (ssc-chip.md has no bytes)."""
        session.card.select_ssse()
        session.authenticate(0x06)
        block = bcd_pin(new)
        session.card.t.command(bytes([0x80, 0x5E, 0x00, 0x00, len(block)]) + block,
                               "reload PIN")

    def reset_pin(self, pins: PinSource) -> None:
        """重置: the holder sets a new PIN without the old one (after the operator checked ID)."""
        with self._card() as session:
            new = self._new_pin(pins)
            try:
                self._reload_pin(session, new)
            except CardStatusError as exc:
                raise _pin_error(exc) from None

    # -- temporary cards ----------------------------------------------------------------------
    def issue_temporary(self, holder_id: str, holder_name: str, pins: PinSource,
                        agent_id: str = "", agent_name: str = "") -> TemporaryCard:
        """临时卡发放: write the holder onto a blank temporary card, record it with the CMS
        (which refuses a second outstanding one), and let the holder set the PIN."""
        findings = check_id_number(holder_id) + check_name(holder_name)
        if agent_id:
            findings += check_id_number(agent_id, "agent_id") + check_name(agent_name,
                                                                            "agent_name")
        if findings:
            raise WindowError("invalid_holder", "; ".join(f.message for f in findings))
        with self._card() as session:
            if self._kind(session) != "temporary":
                raise WindowError("not_temporary", "this is a formal card (it has a bank "
                                  "application): use a blank temporary card")
            assert session.facts is not None
            on_chip = decode_value(ITEMS["id_number"],
                                   session.read_items(["id_number"])["id_number"])
            if on_chip and on_chip != holder_id:
                raise WindowError("card_in_use", "this temporary card belongs to someone else: "
                                  "recall it first")
            today = self.today()
            valid_from = today.strftime("%Y%m%d")
            valid_to = add_months(today, TEMPORARY_MONTHS).strftime("%Y%m%d")
            try:
                rewritten = self.cms.record_temporary_card(
                    session.facts.card_id_code, holder_id, holder_name, valid_from, valid_to,
                    agent_id, agent_name)
            except CmsError as exc:
                raise WindowError(exc.reason, str(exc)) from None
            assert session.profile is not None
            tag09, tag4e = split_name_gbk(holder_name)
            values = {
                "id_number": holder_id, "name": tag09, "name_ext": tag4e,
                "sex": "1" if int(holder_id[16]) % 2 else "2", "birth_date": holder_id[6:14],
                "birthplace": holder_id[:6], "issue_date": valid_from, "expiry_date": valid_to,
            }  # fmt: skip
            from cardstation.drivers.pcsc.ssc import encode_value

            session.write({k: encode_value(ITEMS[k], v) for k, v in values.items()}, holder_id)
            new = self._new_pin(pins)
            try:
                self._reload_pin(session, new)
            except CardStatusError as exc:
                raise _pin_error(exc) from None
            return TemporaryCard(session.facts.card_id_code, mask_id_number(holder_id),
                                 valid_from, valid_to, rewritten)

    def rewrite_temporary(self, pins: PinSource) -> None:
        """重写: the holder of a temporary card sets the PIN again."""
        with self._card() as session:
            if self._kind(session) != "temporary":
                raise WindowError("not_temporary", "this is not a temporary card")
            new = self._new_pin(pins)
            try:
                self._reload_pin(session, new)
            except CardStatusError as exc:
                raise _pin_error(exc) from None

    def recall_temporary(self) -> TemporaryCard:
        """收回: read the card, confirm with the CMS, mark it recalled there and on the chip
        (its validity ends today)."""
        with self._card() as session:
            assert session.facts is not None
            if self._kind(session) != "temporary":
                raise WindowError("not_temporary", "this is not a temporary card")
            code = session.facts.card_id_code
            try:
                record = self.cms.get_temporary_card(code)
                self.cms.recall_temporary_card(code)
            except CmsError as exc:
                raise WindowError(exc.reason, str(exc)) from None
            today = self.today().strftime("%Y%m%d")
            from cardstation.drivers.pcsc.ssc import encode_value

            session.write({"expiry_date": encode_value(ITEMS["expiry_date"], today)},
                          record["holder_id"])
            return TemporaryCard(code, mask_id_number(record["holder_id"]),
                                 record["valid_from"], today)
