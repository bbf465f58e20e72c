"""Window services on the desk reader: read a card, check a returned card, PINs, temporary cards.

PINs come from a `PinSource`: the PIN pad prompts the holder and returns the PIN block, which is
decrypted only here, at the last moment, and goes straight into the card's APDU (the APDU trace
masks it). Nothing in this module logs a PIN, and operator-facing errors name the cause and the
remedy (business-flows.md section 3: 6 wrong PINs lock; a new PIN may not be 123456).
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from cardstation.drivers.pcsc.errors import (
    ApplicationLocked,
    AuthenticationBlocked,
    CardRemoved,
    CardStatusError,
    FileNotFound,
    FunctionNotSupported,
    IncorrectParameters,
    MemoryFailure,
    NoCard,
    NoReadersAvailable,
    PcscError,
    PcscServiceUnavailable,
    ReaderNotFound,
    ReaderUnavailable,
    UnresponsiveCard,
    VerificationFailed,
)
from cardstation.drivers.pcsc.ssc import ITEMS, BasicInfo, bcd_pin, decode_value, encode_value
from cardstation.drivers.pcsc.transport import ApduTransport
from cardstation.drivers.redaction import mask_id_number

from .chip import ChipBelongsToAnotherHolder, ChipFacts, ChipSession
from .keys.service import KeyService, KeyServiceError
from .ports.cms import Cms, CmsError, CmsUnavailable, TemporaryCardUnknown
from .rules import check_id_number, check_name, split_name_gbk

INITIAL_PIN = "123456"
PinSource = Callable[[str], str]  # prompt id (ENTER_PIN, ENTER_NEW_PIN, ...) -> PIN digits
TEMPORARY_MONTHS = 3

# -- reasons: stable, UPPER_SNAKE, the wire value of ErrorInfo.reason (server/window_servicer.py
# maps each to its gRPC code; the README lists them) ------------------------------------------
# the desk reader and the card in it
NO_CARD = "NO_CARD"                          # no card in the desk reader
CARD_UNREADABLE = "CARD_UNREADABLE"          # no answer to reset: wrong way round, dirty chip
DESK_READER_UNAVAILABLE = "DESK_READER_UNAVAILABLE"  # unplugged, or no reader matches
PCSC_UNAVAILABLE = "PCSC_UNAVAILABLE"        # pcscd not running
CARD_REMOVED = "CARD_REMOVED"                # the card left the reader during the operation
CARD_ERROR = "CARD_ERROR"                    # another PC/SC failure during the operation
CARD_DAMAGED = "CARD_DAMAGED"                # memory failure, application permanently locked
CARD_REFUSED = "CARD_REFUSED"                # the card answered another error status word
WRONG_CARD = "WRONG_CARD"                    # 回执验卡: the card is someone else's
# PINs
WRONG_PIN = "WRONG_PIN"
PIN_LOCKED = "PIN_LOCKED"
PIN_NOT_ALLOWED = "PIN_NOT_ALLOWED"          # 123456, or refused by the card
PIN_FORMAT = "PIN_FORMAT"
PIN_MISMATCH = "PIN_MISMATCH"
UNBLOCK_REFUSED = "UNBLOCK_REFUSED"
PIN_ENTRY_CANCELLED = "PIN_ENTRY_CANCELLED"  # the holder pressed cancel on the PIN pad
PIN_ENTRY_TIMEOUT = "PIN_ENTRY_TIMEOUT"      # nobody typed in time
NO_IDREADER = "NO_IDREADER"                  # not configured
NO_PINPAD = "NO_PINPAD"                      # not configured
# temporary cards
INVALID_HOLDER = "INVALID_HOLDER"
NOT_TEMPORARY = "NOT_TEMPORARY"
CARD_IN_USE = "CARD_IN_USE"
TEMPORARY_CARD_OUTSTANDING = "TEMPORARY_CARD_OUTSTANDING"  # the CMS: holder has one out
TEMPORARY_CARD_UNKNOWN = "TEMPORARY_CARD_UNKNOWN"          # the CMS has no such card
TEMPORARY_CARD_NOT_ISSUED = "TEMPORARY_CARD_NOT_ISSUED"    # recalled or withdrawn at the CMS
TEMPORARY_ISSUE_UNCONFIRMED = "TEMPORARY_ISSUE_UNCONFIRMED"  # CMS lost mid-record, chip blank
TEMPORARY_ISSUE_ROLLED_BACK = "TEMPORARY_ISSUE_ROLLED_BACK"  # failed after the record: voided
TEMPORARY_ISSUE_INCOMPLETE = "TEMPORARY_ISSUE_INCOMPLETE"    # ... and the void failed too
TEMPORARY_RECALL_INCOMPLETE = "TEMPORARY_RECALL_INCOMPLETE"  # recalled at the CMS, chip not
TEMPORARY_CARD_MISMATCH = "TEMPORARY_CARD_MISMATCH"  # chip's holder is not the CMS record's
CMS_UNAVAILABLE = "CMS_UNAVAILABLE"
KEY_SERVICE = "KEY_SERVICE"                  # the key module (PSAM) or its reader failed
CMS_REFUSED = "CMS_REFUSED"                  # the CMS refused for a reason of its own

NO_ID_CARD = "NO_ID_CARD"                    # GA 467: no ID card on the reader
IDREADER_NOT_RESPONDING = "IDREADER_NOT_RESPONDING"  # GA 467: unplugged, no answer
IDREADER_PREFIX = "IDREADER_"                # IDREADER_<its error>: another GA 467 status

REASONS = tuple(value for name, value in list(globals().items())
                if name.isupper() and isinstance(value, str) and value == name)


def idreader_reason(exc: Exception) -> str:
    """The reason for a GA 467 reader error (the servicer and `cardstation read-id` agree)."""
    from cardstation.drivers.idreader.errors import NoCard as NoIdCard
    from cardstation.drivers.idreader.errors import ReaderNotResponding

    if isinstance(exc, NoIdCard):
        return NO_ID_CARD
    if isinstance(exc, ReaderNotResponding):
        return IDREADER_NOT_RESPONDING
    return IDREADER_PREFIX + re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).upper()


class WindowError(RuntimeError):
    """A window service could not be done; `reason` is stable (one of REASONS or CMS_*),
    `cause` and `remedy` are for people: str() is "cause — remedy"."""

    def __init__(self, reason: str, cause: str, remedy: str = "") -> None:
        super().__init__(cause)
        self.reason = reason
        self.cause = cause
        self.remedy = remedy

    def __str__(self) -> str:
        return f"{self.cause} — {self.remedy}" if self.remedy else self.cause


@dataclass(frozen=True)
class CardReading:
    info: BasicInfo
    kind: str  # "formal" | "temporary"
    generation: int
    bank_account: str = ""  # the bank application's PAN (formal cards only)

    def to_dict(self, show_id: bool = False) -> dict[str, object]:
        info = {k: v for k, v in asdict(self.info).items() if k != "extra"}
        if not show_id:
            info["id_number"] = mask_id_number(info["id_number"]) if info["id_number"] else ""
        account = self.bank_account if show_id or not self.bank_account \
            else mask_id_number(self.bank_account)
        return {"kind": self.kind, "generation": self.generation, **info,
                "bank_account": account}


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


UNLOCK_AT_WINDOW = "unblock it (解锁) at the window with the card and the holder's ID"
DESK_CABLE = ("check the desk reader's USB cable and [readers] desk in cardstation.toml "
              "(`cardstation card readers` lists what PC/SC sees), then try again")


def _pin_error(exc: CardStatusError) -> WindowError:
    if isinstance(exc, VerificationFailed):
        left = exc.tries_left
        if left == 0:
            return WindowError(PIN_LOCKED, "wrong PIN: the PIN is now locked after 6 wrong "
                               "tries", UNLOCK_AT_WINDOW)
        return WindowError(WRONG_PIN, f"wrong PIN, {left} tries left before it locks",
                           "let the holder type the PIN again")
    if isinstance(exc, AuthenticationBlocked):
        return WindowError(PIN_LOCKED, "the PIN is locked (6 wrong tries)", UNLOCK_AT_WINDOW)
    if isinstance(exc, IncorrectParameters):
        return WindowError(PIN_NOT_ALLOWED, "the card refused the new PIN",
                           "choose another PIN (not the initial PIN 123456)")
    return _card_status_error(exc)


def _card_status_error(exc: CardStatusError) -> WindowError:
    if isinstance(exc, MemoryFailure | ApplicationLocked):
        return WindowError(CARD_DAMAGED, exc.cause, exc.remedy)
    return WindowError(CARD_REFUSED, exc.cause, exc.remedy)


def _connect_error(exc: PcscError) -> WindowError:
    """A failure to reach the card in the desk reader, named by its cause."""
    if isinstance(exc, NoCard):
        return WindowError(NO_CARD, "no card in the desk reader",
                           "insert the card into the desk reader, chip first and facing up; "
                           "if a card is in, " + DESK_CABLE)
    if isinstance(exc, UnresponsiveCard):
        return WindowError(CARD_UNREADABLE, f"the card in the desk reader does not answer "
                           f"({exc.cause})", exc.remedy)
    if isinstance(exc, PcscServiceUnavailable):
        return WindowError(PCSC_UNAVAILABLE, exc.cause, exc.remedy)
    if isinstance(exc, NoReadersAvailable | ReaderNotFound | ReaderUnavailable):
        return WindowError(DESK_READER_UNAVAILABLE,
                           f"the desk card reader is not connected ({exc.cause})", DESK_CABLE)
    if isinstance(exc, CardRemoved):
        return WindowError(CARD_REMOVED, exc.cause, "put the card back in the desk reader "
                           "and keep it in until the operation has finished")
    return WindowError(CARD_ERROR, exc.cause, exc.remedy)


def _operation_error(exc: PcscError) -> WindowError:
    """A PC/SC failure in the middle of an operation on the card."""
    if isinstance(exc, CardRemoved):
        return WindowError(CARD_REMOVED, f"the card left the desk reader during the operation "
                           f"({exc.cause})", "put the card back, keep it in until the "
                           "operation has finished, and do the operation again")
    if isinstance(exc, ReaderUnavailable | NoReadersAvailable):
        return WindowError(DESK_READER_UNAVAILABLE, f"the desk card reader went away during "
                           f"the operation ({exc.cause})", DESK_CABLE)
    return WindowError(CARD_ERROR, exc.cause, "if it keeps failing, clean the chip; a card "
                       "that still cannot be read is treated as broken")


def _cms_cause(exc: CmsError) -> str:
    return exc.message.partition(" — ")[0]


def _cms_error(exc: CmsError) -> WindowError:
    """The port's code is the reason (TEMPORARY_CARD_OUTSTANDING, CMS_UNAVAILABLE, ...)."""
    cause, _, remedy = exc.message.partition(" — ")
    return WindowError(exc.code, cause, remedy or "check the card in the CMS")


class WindowServices:
    def __init__(self, open_desk: Callable[[], ApduTransport], keys: KeyService,
                 cms: Cms, terminal_number: str = "",
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
                raise _connect_error(exc) from None
            raise
        try:
            session = ChipSession(transport, self.keys)
            session.open()
            yield session
        except PcscError as exc:
            if exc.reader and transport.reader and exc.reader != transport.reader:
                # not the desk card: the key module (PSAM) in its own reader
                raise WindowError(KEY_SERVICE, f"the key module (PSAM) failed ({exc.cause})",
                                  exc.remedy) from None
            raise _operation_error(exc) from None
        except CardStatusError as exc:
            if exc.reader and transport.reader and exc.reader != transport.reader:
                raise WindowError(KEY_SERVICE, f"the key module (PSAM) refused ({exc.cause})",
                                  "check that the PSAM is this city's and seated in its "
                                  "reader, then try again") from None
            raise _card_status_error(exc) from None
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

    def _kind(self, session: ChipSession) -> tuple[str, str]:
        """("formal", its PAN) or ("temporary", "")."""
        try:
            pan = session.card.read_pan()
        except (FileNotFound, FunctionNotSupported, ValueError):
            return "temporary", ""  # temporary cards have no bank application
        except CardStatusError:
            return "temporary", ""
        return "formal", pan

    def read_card(self) -> CardReading:
        """读卡: the 11 iReadCardBas fields, temporary vs formal, generation."""
        with self._card() as session:
            info = session.card.read_basic_info(self._authenticator(session),
                                                self.terminal_number)
            kind, pan = self._kind(session)
            version = info.spec_version[:1]
            generation = int(version) if version.isdigit() else 0
            return CardReading(info, kind, generation, pan)

    def verify_returned_card(self, id_number: str) -> CardReading:
        """回执验卡: the card in the reader must be this holder's."""
        reading = self.read_card()
        if reading.info.id_number != id_number:
            raise WindowError(WRONG_CARD, "this card does not belong to the holder "
                              f"{mask_id_number(id_number)}", "check the card number by hand")
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
            raise WindowError(PIN_NOT_ALLOWED, "the new PIN may not be the initial PIN 123456",
                              "let the holder choose another")
        try:
            bcd_pin(new)
        except ValueError:
            raise WindowError(PIN_FORMAT, "a PIN is 4 to 16 digits",
                              "let the holder type it again") from None
        if pins("CONFIRM_NEW_PIN") != new:
            raise WindowError(PIN_MISMATCH, "the two new PINs differ",
                              "let the holder type them again")
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
                raise WindowError(UNBLOCK_REFUSED, f"the card refused the unblock "
                                  f"({exc.cause})", exc.remedy) from None

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
    def _temporary_session(self, session: ChipSession) -> ChipFacts:
        if self._kind(session)[0] != "temporary":
            raise WindowError(NOT_TEMPORARY, "this is a formal card (it has a bank "
                              "application)", "use a temporary card (临时卡)")
        assert session.facts is not None
        return session.facts

    def issue_temporary(self, holder_id: str, holder_name: str, pins: PinSource,
                        agent_id: str = "", agent_name: str = "") -> TemporaryCard:
        """临时卡发放, in an order that leaves nothing half done:

        1. check the holder and the card (a blank temporary card, or this holder's own), and
           ask the CMS whether it would accept it (no second outstanding card);
        2. the holder sets the PIN twice on the PIN pad: cancelled, timed out or mistyped,
           nothing has been written or recorded;
        3. record the card with the CMS (which refuses a second outstanding one): refused,
           nothing is written;
        4. write the holder onto the chip and reload the PIN. If that fails (card pulled,
           card or key module refusing), the CMS record is withdrawn (voided) and the error
           says so (TEMPORARY_ISSUE_ROLLED_BACK); if withdrawing fails too, the error names
           the state and how to finish it (TEMPORARY_ISSUE_INCOMPLETE).
        """
        findings = check_id_number(holder_id) + check_name(holder_name)
        if agent_id:
            findings += check_id_number(agent_id, "agent_id") + check_name(agent_name,
                                                                            "agent_name")
        if findings:
            raise WindowError(INVALID_HOLDER, "; ".join(f.message for f in findings),
                              "correct the holder's details and try again")
        with self._card() as session:
            facts = self._temporary_session(session)
            on_chip = decode_value(ITEMS["id_number"],
                                   session.read_items(["id_number"])["id_number"])
            if on_chip and on_chip != holder_id:
                raise WindowError(CARD_IN_USE, "this temporary card carries another holder's "
                                  "data", "use a blank temporary card, or recall (收回) this "
                                  "one first")
            today = self.today()
            valid_from = today.strftime("%Y%m%d")
            valid_to = add_months(today, TEMPORARY_MONTHS).strftime("%Y%m%d")
            try:  # a card the CMS will refuse is refused before the holder types a PIN
                self.cms.check_temporary_card(facts.card_id_code, holder_id)
            except CmsError as exc:
                error = _cms_error(exc)
                raise WindowError(error.reason, f"{error.cause}; nothing was written to the "
                                  "card", error.remedy) from None
            try:
                new = self._new_pin(pins)
            except WindowError as exc:
                raise WindowError(exc.reason, f"{exc.cause}; nothing was written to the card "
                                  "and nothing recorded at the CMS",
                                  "start the issue again when the holder is ready") from None
            try:
                rewritten = self.cms.record_temporary_card(
                    facts.card_id_code, holder_id, holder_name, valid_from, valid_to,
                    agent_id, agent_name)
            except CmsUnavailable as exc:
                # the CMS may have recorded it before the answer was lost; the same card is
                # recognised when it is issued again, so that is the way to finish
                raise WindowError(
                    TEMPORARY_ISSUE_UNCONFIRMED,
                    f"the CMS did not confirm the temporary card ({_cms_cause(exc)}); nothing "
                    "was written to the card",
                    "when the CMS is reachable, issue this same card to the holder again") \
                    from None
            except CmsError as exc:
                error = _cms_error(exc)
                raise WindowError(error.reason, f"{error.cause}; nothing was written to the "
                                  "card", error.remedy) from None
            values: dict[str, str | bytes] = {
                "id_number": holder_id, "name": "", "name_ext": "",
                "sex": "1" if int(holder_id[16]) % 2 else "2", "birth_date": holder_id[6:14],
                "birthplace": holder_id[:6], "issue_date": valid_from, "expiry_date": valid_to,
            }  # fmt: skip
            values["name"], values["name_ext"] = split_name_gbk(holder_name)
            try:
                session.write({k: encode_value(ITEMS[k], v) for k, v in values.items()},
                              holder_id)
                self._reload_pin(session, new)
            except Exception as exc:  # every failure after the record is rolled back
                raise self._roll_back_issue(facts.card_id_code, holder_id, rewritten, exc) \
                    from None
            return TemporaryCard(facts.card_id_code, mask_id_number(holder_id),
                                 valid_from, valid_to, rewritten)

    def _roll_back_issue(self, card_id_code: str, holder_id: str, was_issued: bool,
                         exc: Exception) -> WindowError:
        """The CMS has the card recorded, the chip is not finished: withdraw the record."""
        damaged = isinstance(exc, MemoryFailure | ApplicationLocked)
        if isinstance(exc, CardRemoved):
            what = "the card left the desk reader while it was being written"
        elif isinstance(exc, PcscError | CardStatusError):
            what = f"writing the card failed ({exc.cause})"
        elif isinstance(exc, KeyServiceError):
            what = f"the key module failed while the card was being written ({exc})"
        else:
            what = f"writing the card failed ({type(exc).__name__}: {exc})"
        masked = mask_id_number(holder_id)
        if damaged:
            again = "the chip is damaged: put this card aside and issue a new temporary card"
            finish = ("the chip is damaged: recall this card (收回) to close its record (once "
                      "the CMS is reachable), then issue a new temporary card")
        else:
            again = "put the card back and issue it again to the same holder"
            finish = (f"{again} (the CMS recognises this card), or recall it (收回) to close "
                      "the record")
        if was_issued:
            # the CMS already had this very card out to this holder before: its record stays
            return WindowError(TEMPORARY_ISSUE_INCOMPLETE,
                               f"{what}; the CMS keeps this card as issued to {masked} (it was "
                               "before), but the chip may not hold the new dates or PIN",
                               finish)
        try:
            self.cms.void_temporary_card(card_id_code, holder_id)
        except TemporaryCardUnknown:
            pass  # nothing to withdraw: the CMS holds no record of it for this holder
        except CmsError as void_exc:
            return WindowError(TEMPORARY_ISSUE_INCOMPLETE,
                               f"{what}, and withdrawing the CMS record failed "
                               f"({_cms_cause(void_exc)}); the CMS lists this card as issued "
                               f"to {masked}", finish)
        return WindowError(TEMPORARY_ISSUE_ROLLED_BACK,
                           f"{what}; the CMS record was withdrawn and the card is not issued "
                           "(it may hold part of the holder's data)",
                           again if damaged else f"{again}, or put it aside")

    def _issued_record(self, code: str) -> dict[str, Any]:
        try:
            record = self.cms.get_temporary_card(code)
        except CmsError as exc:
            raise _cms_error(exc) from None
        return record

    def rewrite_temporary(self, pins: PinSource) -> None:
        """重写: the holder of a temporary card sets the PIN again. The CMS must have the card
        out to the holder on the chip; the PIN is taken (twice) before anything is written."""
        with self._card() as session:
            facts = self._temporary_session(session)
            record = self._issued_record(facts.card_id_code)
            holder = session.holder_id_number()
            if record.get("status") != "issued" or record.get("holder_id") != holder:
                state = record.get("status") or "unknown"
                raise WindowError(TEMPORARY_CARD_NOT_ISSUED, "the CMS does not list this card "
                                  f"as issued to the holder on its chip (its record: {state})",
                                  "issue a temporary card to the holder instead")
            try:
                new = self._new_pin(pins)
            except WindowError as exc:
                raise WindowError(exc.reason, f"{exc.cause}; the PIN was not changed",
                                  exc.remedy) from None
            try:
                self._reload_pin(session, new)
            except CardStatusError as exc:
                raise _pin_error(exc) from None
            except CardRemoved as exc:
                raise WindowError(CARD_REMOVED, f"the card left the desk reader while the PIN "
                                  f"was being set ({exc.cause}); the PIN may or may not have "
                                  "changed", "put the card back and rewrite it again") from None

    def recall_temporary(self) -> TemporaryCard:
        """收回: read the card, confirm with the CMS, mark it recalled there and on the chip
        (its validity ends today). Repeating a recall finishes one that was cut short."""
        with self._card() as session:
            facts = self._temporary_session(session)
            code = facts.card_id_code
            record = self._issued_record(code)
            on_chip = session.holder_id_number()
            if on_chip and on_chip != record.get("holder_id"):
                raise WindowError(TEMPORARY_CARD_MISMATCH, "the holder on the chip is not the "
                                  "one the CMS recorded for this card", "do not recall it "
                                  "here: check the card and its record in the CMS")
            try:
                self.cms.recall_temporary_card(code)
            except CmsError as exc:
                raise _cms_error(exc) from None
            today = self.today().strftime("%Y%m%d")
            try:
                session.write({"expiry_date": encode_value(ITEMS["expiry_date"], today)},
                              record["holder_id"])
            except (PcscError, CardStatusError, ChipBelongsToAnotherHolder) as exc:
                cause = getattr(exc, "cause", str(exc))
                raise WindowError(TEMPORARY_RECALL_INCOMPLETE, "the card is recalled at the "
                                  f"CMS, but ending its validity on the chip failed ({cause})",
                                  "put the card back and recall it again (that finishes it)") \
                    from None
            return TemporaryCard(code, mask_id_number(record["holder_id"]),
                                 record["valid_from"], today)
