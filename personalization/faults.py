"""Faults the operator can meet, each with a stable reason code, its cause and its remedy.

One vocabulary for the whole station (the README and the protos list it): a reason code is
UPPER_SNAKE and never changes meaning; `cause` says what happened and `remedy` what the operator
does about it, following the operators' fault table (reference/business-flows.md section 2)
row by row where it has a row. `actions` are the buttons that move a job on after the fault.

Device errors are turned into faults here (`fault_of`), once, so no layer above shows a bare
exception text or a driver's class name. Messages are English; the console translates by code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from enum import StrEnum

from cardstation.drivers.pcsc import errors as pcsc
from cardstation.personalization.journal import StorageFault
from cardstation.personalization.keys.service import KeyServiceError, KeyServiceUnavailable
from cardstation.personalization.ports.cms import CertificateRefused, CmsError
from cardstation.personalization.ports.printer import PrinterFault
from cardstation.personalization.storage import StorageKind


class Action(StrEnum):
    """What an operator can do to move a job on (the console's buttons)."""

    RESUME = "RESUME"  # 继续: after the cause is fixed (card put back where asked)
    REJECT_CARD = "REJECT_CARD"  # 退卡: end the job; the card goes to the reject box
    CANCEL = "CANCEL"  # a job that has not touched a card yet
    REMAKE = "REMAKE"  # 重新制卡: a new card for the same applicant (audited)
    RESTORE_AND_RESEND = "RESTORE_AND_RESEND"  # 恢复申请 at the CMS, then resend the return
    RETRY_RETURN = "RETRY_RETURN"  # 失败数据回盘: send the return again now
    MARK_SPOILED = "MARK_SPOILED"  # the card is unusable (废卡): end the job
    CALIBRATE_RIBBON_SENSOR = "CALIBRATE_RIBBON_SENSOR"  # 校正色带传感器
    CLEAN_CARD_PATH = "CLEAN_CARD_PATH"  # 清洁
    RESET_PRINTER = "RESET_PRINTER"  # 复位
    REPRINT = "REPRINT"  # 补打卡面


@dataclass(frozen=True)
class Fault:
    """One fault: `code` (UPPER_SNAKE), `cause`, `remedy`, and the actions that follow it."""

    code: str
    cause: str
    remedy: str
    actions: tuple[Action, ...] = field(default=())

    @property
    def message(self) -> str:
        return f"{self.cause} — {self.remedy}"

    def with_actions(self, *actions: Action) -> Fault:
        return replace(self, actions=tuple(actions))

    def __str__(self) -> str:
        return self.message


_UPPER_SNAKE = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$")


def upper_snake(name: str) -> str:
    """CamelCase or lower_snake -> UPPER_SNAKE (RibbonOut -> RIBBON_OUT)."""
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").upper()


def is_reason_code(code: str) -> bool:
    return bool(_UPPER_SNAKE.match(code))


# -- remedies shared by several faults (the fault table's wording) ----------------------------
REMEDY_CABLES = ("check that both USB cables (the printer's and the chip encoder's) are "
                 "connected; if they are, reinstall the printer driver")
REMEDY_ORIENTATION = ("check the card orientation (rear feed slot, face up, chip inwards); if "
                      "it is right, try another card, then restart the printer")
REMEDY_CHIP = ("clean the chip contacts and try again; a chip that still fails is broken: "
               "the card is treated as spoiled and a new one is made")
REMEDY_NETWORK_RETURN = ("check the network; the return is kept and resent automatically "
                         "(失败数据回盘); if the CMS keeps refusing it, restore the application "
                         "there (恢复申请) and resend")

_PRINTER_ACTIONS = (Action.RESUME, Action.RESET_PRINTER, Action.REJECT_CARD)
#: The fault of each kind of storage trouble (a job stopped by one resumes by itself).
STORAGE_CODES = {StorageKind.FULL: "STORAGE_FULL", StorageKind.UNAVAILABLE: "STORAGE_UNAVAILABLE"}

# Faults that are not device errors (the pipeline's own findings).
CATALOGUE: dict[str, Fault] = {f.code: f for f in (
    Fault("PREVIEW_FINDINGS", "the application failed validation at the preview",
          "correct the application in the CMS (photo, name, numbers), then make the card "
          "again", ()),
    Fault("CHIP_BELONGS_TO_ANOTHER_HOLDER", "the chip of the card in the printer already "
          "carries another holder's data", "the card went to the reject box: put in a blank "
          "pre-made card and make the card again", (Action.REMAKE,)),
    Fault("VERIFICATION_FAILED", "the chip read back different data than was written",
          REMEDY_CHIP, (Action.REMAKE,)),
    Fault("CARD_NOT_IN_PRINTER", "the job's card is no longer in the printer",
          "find it (output hopper, reject box or the jam), put it into the rear feed slot "
          "(face up, chip inwards) and resume; or reject the card",
          (Action.RESUME, Action.REJECT_CARD)),
    Fault("WRONG_CARD_FED", "the card fed is not this job's card",
          "it went to the reject box; put this job's card into the rear feed slot (face up, "
          "chip inwards) and resume", (Action.RESUME, Action.REJECT_CARD)),
    Fault("RETURN_REFUSED", "the CMS refused the data return (数据回盘) for good",
          "do not hand the card over; restore the application in the CMS (恢复申请) and "
          "resend, or mark the card spoiled",
          (Action.RESTORE_AND_RESEND, Action.MARK_SPOILED)),
    Fault("RETURN_PENDING", "the CMS has not yet acknowledged the data return (数据回盘)",
          "do not hand the card over yet; " + REMEDY_NETWORK_RETURN, (Action.RETRY_RETURN,)),
    Fault("CANCELLED", "the job was cancelled before a card was fed", "nothing to do", ()),
    Fault("CARD_REJECTED_BY_OPERATOR", "the operator ended the job and rejected its card",
          "take the card from the reject box; make a new one if the applicant still needs it",
          (Action.REMAKE,)),
    Fault("CARD_SPOILED", "the card was marked spoiled", "destroy the card; make a new one "
          "if the applicant still needs it", (Action.REMAKE,)),
    Fault("STATION_BUSY_WITH_EARLIER_JOBS", "earlier jobs are waiting for the station",
          "fix what they wait for (the station picture names it); this job follows them", ()),
    Fault("LANE_HANDOFF", "the printer could not feed the card (its chip was not touched)",
          "nothing to do for this job: another printer of the station makes its card; fix "
          "the first printer (the station picture names its fault)", ()),
    Fault("PRINTER_HELD_BY_FAILED_JOB", "a failed job's card may still be in the printer",
          "finish that job first (resume it or reject its card)", ()),
    Fault("KEY_SERVICE_UNAVAILABLE", "the key service (PSAM or encryption machine) does not "
          "answer", "check the PSAM card is in its reader and the reader's cable is connected; "
          "with an encryption machine (HSM), check the network to it and its address and "
          "certificates in [keys] of cardstation.toml; then resume", ()),
    Fault("KEY_SERVICE_REFUSED", "the key service (encryption machine) refused to compute the "
          "card's cryptogram", "check that the encryption machine serves this card issuer "
          "(system id, key address, business type) and that the card stock is the right one; "
          "resume, or reject the card", (Action.RESUME, Action.REJECT_CARD)),
    Fault("CERTIFICATE_REFUSED", "the CMS would not issue the certificates of this "
          "3rd-generation card", "check the application and the card's certificate record in "
          "the CMS (its certificate service), then resume; or reject the card",
          (Action.RESUME, Action.REJECT_CARD)),
    Fault("CERTIFICATE_KEY_MISMATCH", "the signing certificate the CMS issued is not for this "
          "card's signing key", "do not hand the card over; report it to the CMS "
          "administrator, then resume (the certificates are requested again) or reject the card",
          (Action.RESUME, Action.REJECT_CARD)),
    Fault("CHIP_CERTIFICATE_DIFFERS", "the chip already carries certificates other than the "
          "ones the CMS issued for it", "the card went to the reject box: put in a blank "
          "pre-made card and make the card again", (Action.REMAKE,)),
    Fault("STORAGE_ERROR", "the station could not write its journal",
          "check the disk (space, permissions), then resume", (Action.RESUME,)),
    Fault("STORAGE_FULL", "the station's disk is full: the journal cannot record the job",
          "free space on the disk of the station's data folder (never delete the journal "
          "files); the job continues by itself once its step is recorded, and its card stays "
          "in the printer until then: do not take it out", (Action.RESUME, Action.REJECT_CARD)),
    Fault("STORAGE_UNAVAILABLE", "the station's journal cannot be written now",
          "close the program that holds the journal open (a backup or a database viewer) or "
          "check the disk; the job continues by itself once its step is recorded, and its card "
          "stays in the printer until then: do not take it out",
          (Action.RESUME, Action.REJECT_CARD)),
    Fault("REQUEST_ID_REUSED", "the request id was already used for another applicant",
          "use a new request id for each applicant (or leave it empty)", ()),
    Fault("APPLICANT_HAS_LIVE_JOB", "this applicant's card is already being made",
          "follow that job instead of starting another (one card per person)", ()),
    Fault("CARD_ALREADY_MADE_HERE", "a card was already made for this application at this "
          "station", "hand over that card; if it is spoiled, mark it spoiled and re-make it",
          (Action.MARK_SPOILED, Action.REMAKE)),
    Fault("REMAKE_REQUIRED", "a card for this application was already fed at this station",
          "a second card is a re-make: re-make that job, giving the reason", (Action.REMAKE,)),
    Fault("REMAKE_NOT_NEEDED", "no card was made or fed for this application yet",
          "make the card normally, without re-make", ()),
    Fault("REMAKE_OF_WRONG_JOB", "a re-make must name the applicant's last card job",
          "re-make the job the station names", ()),
    Fault("REMAKE_REASON_REQUIRED", "a re-make needs a reason", "say why another card is "
          "made (for example: the chip was damaged)", ()),
    Fault("REMAKE_OF_GOOD_CARD", "the applicant's last card was made and not marked spoiled",
          "hand that card over; if it is unusable, mark it spoiled first", (Action.MARK_SPOILED,)),
    Fault("NOTHING_TO_RESEND", "this job has no data return waiting to be sent",
          "nothing to do", ()),
    Fault("JOB_FINISHED", "the job is finished", "nothing to do; re-make it if the applicant "
          "needs another card", (Action.REMAKE,)),
    Fault("REPRINT_NOT_MADE", "only a card that was made can have its face reprinted",
          "finish the job first", ()),
    Fault("REPRINT_WRONG_CARD", "the card in the printer belongs to another holder: nothing "
          "was printed", "it is in the output hopper; put this job's card into the rear feed "
          "slot (face up, chip inwards) and reprint", (Action.REPRINT,)),
    Fault("REPRINT_DATA_PURGED", "the holder's data of this job was removed after "
          "[station] personal_data_days (retention): the face cannot be printed again",
          "re-make the card from the CMS's application (the CMS keeps the record), or mark "
          "this card spoiled first if it is unusable", (Action.REMAKE,)),
    Fault("FACE_DOES_NOT_FIT", "the holder's data read back from the chip does not fit the "
          "card face", "reject the card and correct the application (name, bank) in the CMS",
          (Action.REJECT_CARD,)),
    # intake: a picture the photo normaliser refuses (personalization/photo)
    Fault("PHOTO_UNREADABLE", "the picture is not an image the station can read",
          "take the photo again with the camera, or load a JPEG or PNG file", ()),
    Fault("PHOTO_NO_FACE", "no face was found in the picture",
          "have the holder face the camera, eyes open, hair and hands away from the face, "
          "and take the photo again", ()),
    Fault("PHOTO_TWO_FACES", "more than one face is in the picture",
          "only the holder may be in the picture: ask others to step out of view (and cover "
          "any poster with a face behind), then take the photo again", ()),
    Fault("PHOTO_FACE_TOO_SMALL", "the face is too small in the picture for a sharp photo",
          "bring the holder closer to the camera (or zoom in) and take the photo again", ()),
    Fault("PHOTO_HEAD_AT_EDGE", "the head is too close to the edge of the picture",
          "centre the holder in the camera's view with space above the head, then take the "
          "photo again", ()),
    Fault("PHOTO_NOT_COLOUR", "the picture has no colour (a black-and-white picture): the card "
          "needs a 24-bit RGB colour photo", "take the photo again with the camera in colour, "
          "or load a colour picture", ()),
    Fault("PHOTO_TOO_DARK", "the face is too dark", "light the holder's face evenly from "
          "the front (no back light from a window) and take the photo again", ()),
    Fault("PHOTO_BACKGROUND_NOT_UNIFORM", "the background is not plain: it shows a pattern, "
          "objects or shadows", "seat the holder in front of the plain white background "
          "(or choose whitening) and take the photo again", ()),
    Fault("PHOTO_BACKGROUND_NOT_WHITE", "the background is not white (coloured or too grey)",
          "use the white background and more light, or choose whitening, and take the photo "
          "again", ()),
    Fault("PHOTO_SIZE_WINDOW", "the photo cannot be encoded inside the configured file-size "
          "window", "check [photo] min_kb and max_kb in cardstation.toml (KB = 1024 bytes); "
          "take the photo again", ()),
    Fault("INTERNAL", "an unexpected error stopped the job",
          "resume the job; if it happens again, report it to the station supplier with the "
          "job id", (Action.RESUME, Action.REJECT_CARD)),
)}


def fault(code: str, detail: str = "", *, actions: tuple[Action, ...] | None = None) -> Fault:
    """The catalogued fault `code`, its cause extended by `detail`."""
    base = CATALOGUE[code]
    cause = f"{base.cause}: {detail}" if detail else base.cause
    return Fault(code, cause, base.remedy, base.actions if actions is None else actions)


#: Printer conditions whose remedy starts with the ribbon-sensor calibration (fault table).
_CALIBRATE_FIRST = ("PRINTER_RIBBON_SEARCH_FAIL", "PRINTER_RIBBON_TAKE_CALIBRATION_FAILED",
                    "PRINTER_RIBBON_SUPPLY_CALIBRATION_FAILED")


def _printer_fault(exc: PrinterFault) -> Fault:
    """The port's printer fault for an operator: its code, and the buttons that fit it."""
    if exc.alert:
        actions: tuple[Action, ...] = _PRINTER_ACTIONS
        if exc.code in _CALIBRATE_FIRST:
            actions = (Action.CALIBRATE_RIBBON_SENSOR, Action.CLEAN_CARD_PATH,
                       *_PRINTER_ACTIONS)
        return Fault(exc.code, f"printer: {exc.cause}", exc.remedy, actions)
    if exc.code == "PRINTER_NOT_CONNECTED":
        return Fault(exc.code, f"the printer is not connected ({exc.cause})",
                     REMEDY_CABLES, (Action.RESUME, Action.REJECT_CARD))
    if exc.code == "PRINTER_TIMEOUT":
        return Fault(exc.code, f"the printer did not finish in time ({exc.cause})",
                     exc.remedy, _PRINTER_ACTIONS)
    if exc.code == "PRINTER_PROTOCOL_ERROR":
        return Fault(exc.code, f"the printer's answer was not understood ({exc.cause})",
                     exc.remedy, _PRINTER_ACTIONS)
    return Fault(exc.code, f"the printer refused ({exc.cause})", exc.remedy, _PRINTER_ACTIONS)


def _pcsc_fault(exc: pcsc.PcscError) -> Fault:
    # the driver's own remedy speaks of a desk reader; at the printer's encoder the fault
    # table's remedies apply, so only the cause is taken
    text = exc.cause
    if isinstance(exc, pcsc.PcscServiceUnavailable):
        return Fault("PCSC_SERVICE_UNAVAILABLE", f"the smart-card service is not running "
                     f"({text})", "restart the station PC's smart-card service (pcscd), "
                     "then resume", (Action.RESUME, Action.REJECT_CARD))
    if isinstance(exc, pcsc.ReaderNotFound | pcsc.NoReadersAvailable | pcsc.ReaderUnavailable):
        return Fault("ENCODER_NOT_CONNECTED", f"the printer's chip encoder is not connected "
                     f"({text})", REMEDY_CABLES, (Action.RESUME, Action.REJECT_CARD))
    if isinstance(exc, pcsc.UnresponsiveCard):
        return Fault("CHIP_POWER_ON_FAILED", f"the chip gave no answer to power-on ({text})",
                     REMEDY_ORIENTATION, (Action.REMAKE,))
    if isinstance(exc, pcsc.CardRemoved):
        return Fault("CARD_REMOVED", f"the chip stopped answering in the middle of a command "
                     f"({text})", "do not pull cards during a job; resume: the card is read "
                     "again before anything else", (Action.RESUME, Action.REJECT_CARD))
    if isinstance(exc, pcsc.NoCard | pcsc.CardWaitTimeout):
        return Fault("NO_CARD_AT_ENCODER", f"no card reached the chip encoder ({text})",
                     "check the rear feed slot has blank cards and the encoder's USB cable; "
                     "then resume", (Action.RESUME, Action.REJECT_CARD))
    return Fault("PCSC_ERROR", f"the chip encoder failed ({text})", REMEDY_CABLES,
                 (Action.RESUME, Action.REJECT_CARD))


def _card_fault(exc: pcsc.CardStatusError) -> Fault:
    text = exc.cause
    if isinstance(exc, pcsc.MemoryFailure | pcsc.ApplicationLocked):
        return Fault("CHIP_DAMAGED", f"the chip is damaged ({text})", REMEDY_CHIP,
                     (Action.REMAKE,))
    if isinstance(exc, pcsc.SecurityNotSatisfied | pcsc.ReferenceDataInvalid
                  | pcsc.AuthenticationBlocked | pcsc.VerificationFailed):
        return Fault("CHIP_AUTHENTICATION_FAILED", f"the chip refused the station's keys "
                     f"({text})", "check that the PSAM belongs to this card issuer and the "
                     "card stock is the right one; the card went to the reject box",
                     (Action.REMAKE,))
    return Fault("CHIP_REFUSED", f"the chip refused a command ({text})",
                 "check the card stock is a pre-made social security card for this region; "
                 + REMEDY_CHIP, (Action.REMAKE,))


def fault_of(exc: BaseException) -> Fault:
    """The fault an exception means, for an operator. Never raises."""
    carried = getattr(exc, "fault", None)
    if isinstance(carried, Fault):
        return carried
    if isinstance(exc, PrinterFault):
        return _printer_fault(exc)
    if isinstance(exc, pcsc.PcscError):
        return _pcsc_fault(exc)
    if isinstance(exc, pcsc.CardStatusError):
        return _card_fault(exc)
    if isinstance(exc, CertificateRefused):
        return fault("CERTIFICATE_REFUSED", str(exc).partition(" — ")[0])
    if isinstance(exc, CmsError):
        return cms_fault(exc)
    if isinstance(exc, KeyServiceUnavailable):
        return fault("KEY_SERVICE_UNAVAILABLE", str(exc),
                     actions=(Action.RESUME, Action.REJECT_CARD))
    if isinstance(exc, KeyServiceError):
        return fault("KEY_SERVICE_REFUSED", str(exc))
    if isinstance(exc, StorageFault):
        return fault(STORAGE_CODES[exc.kind], str(exc))
    return fault("INTERNAL", f"{type(exc).__name__}: {exc}")


def cms_fault(exc: CmsError) -> Fault:
    """A CMS error as a fault: the port's code (never the CMS's wire code); the adapter's
    message is already "cause — remedy"."""
    code = exc.code
    cause, sep, remedy = str(exc).partition(" — ")
    if not sep:
        remedy = "check the application in the CMS, then try again"
    return Fault(code, cause, remedy, ())
