"""Alert code tables: HiTi 24-bit alert codes and the CS-2xx 4-digit codes, with named faults.

Sources, by name and version:
- gutenprint `src/cups/backend_hiti.c`, `hiti_errors()` as of 2024-06 (gutenprint-mirror commit
  ea5b9229; the 2019-11 copy, ecfed957, has a shorter table). Every code of that table decodes
  to a named fault here. Its `#if 0` block (driver-side status numbers 0x01-0xA4, "not sure
  about these, might be driver-generated") is not a list of alerts and is left out.
- HiTi `PavoApi.h` revision 1.7.11.1100 (2016-02-03): the PAVO_DS_* device-status codes (the
  same numbers as the alerts) and the 4-digit codes "used for CS-2xx" (0100..1400), whose
  value is the code read as hex (0x000100 = "0100"; gutenprint lists the same values).
Where the two disagree, the card-printer source (PavoApi, "used for CS-2xx") is followed for
this card printer, and the entry says so. Every fault has a description naming the CAUSE and a
`remedy` telling the operator what to DO (short English; the console translates). Faults with
the same remedy share a REMEDY_* constant. `cs_code` is the 4-digit code sent with the alert on
the CS family (None where no source gives one).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from cardstation.drivers.hiti.assumptions import JAM_PATHS, RIBBON_MALFUNCTION_CODE24
from cardstation.drivers.hiti.frames import Opcode


class AlertCategory(IntEnum):
    """Alert categories in the order the host resolves them (highest priority first).

    The value is the opcode that lists the category's alerts.
    """

    WARNING = Opcode.ALERTS_WARNING
    SERVICE = Opcode.ALERTS_SERVICE
    OPERATOR = Opcode.ALERTS_OPERATOR
    JAM = Opcode.ALERTS_JAM
    INPUT = Opcode.ALERTS_INPUT
    SUPPLIES = Opcode.ALERTS_SUPPLIES


#: StatusSummary flag name for each category.
CATEGORY_FLAG: dict[AlertCategory, str] = {
    AlertCategory.WARNING: "warning",
    AlertCategory.SERVICE: "service",
    AlertCategory.OPERATOR: "operator",
    AlertCategory.JAM: "jam",
    AlertCategory.INPUT: "input",
    AlertCategory.SUPPLIES: "supplies",
}

#: `ascii` value sent for an alert without a CS 4-digit code.
NO_CS_CODE = "0000"

# --- remedies (what the operator does) -------------------------------------------------------
REMEDY_COLOUR_OFFSET = "calibrate or clean the ribbon sensor"
REMEDY_NOT_CONNECTED = (
    "check both USB cables (printer and encoder) are connected; if they are, reinstall the "
    "printer driver"
)
REMEDY_RIBBON_CHIP = "replace the ribbon or reseat its chip"
REMEDY_CHIP_POWER_ON = (
    "check the card orientation (rear slot, face up, chip inwards); try another reader; "
    "restart the printer"
)
REMEDY_JAM = (
    "open the cover, remove the jammed card, close the cover and reset the printer "
    "(the card goes to the reject box)"
)
REMEDY_COVER = "close the printer cover until it clicks"
REMEDY_LOAD_RIBBON = "load a HiTi CS-2xx YMCKO ribbon and close the cover"
REMEDY_REPLACE_RIBBON = "replace the ribbon with a new HiTi CS-2xx YMCKO ribbon"
REMEDY_RIBBON_TYPE = (
    "load a YMCKO ribbon (a colour card face needs the Y, M, C, K and O panels), then print "
    "the card again"
)
REMEDY_RIBBON_CHECK = (
    "open the cover, check the ribbon is not torn or slack and runs round its rollers, replace "
    "it if damaged, close the cover and reset the printer"
)
REMEDY_CALIBRATE = "clean the ribbon sensor, then calibrate it again"
REMEDY_LOAD_CARDS = "load blank cards into the rear feed slot, face up, chip inwards"
REMEDY_RESEND = "reset the printer, then print the card again"
REMEDY_SERVICE = (
    "switch the printer off and on; if the fault comes back, stop issuing on this printer and "
    "call HiTi service with the code shown"
)
REMEDY_FIRMWARE = (
    "switch the printer off and on; if the fault comes back, have service reinstall or update "
    "the printer firmware"
)
REMEDY_SLAVE = (
    "the code concerns a second (slave) printer, which this station does not have: switch the "
    "printer off and on, and call service with the code if it persists"
)
REMEDY_FLIPPER = (
    "open the flipper cover, make sure no card is stuck and the flipper turns freely, close "
    "the cover and reset the printer; call service if it persists"
)


@dataclass(frozen=True)
class AlertDef:
    """One named printer fault as it appears on the wire."""

    name: str
    code24: int
    cs_code: str | None
    category: AlertCategory
    description: str
    remedy: str
    #: For jams: where the card is stuck.
    position: str | None = None
    #: False for a notice that does not stop the printer (PavoApi "card low").
    blocks: bool = True


_MALFUNCTION = RIBBON_MALFUNCTION_CODE24
_W, _S, _O, _J, _I, _U = (AlertCategory.WARNING, AlertCategory.SERVICE, AlertCategory.OPERATOR,
                          AlertCategory.JAM, AlertCategory.INPUT, AlertCategory.SUPPLIES)


def _jam(code24: int, cs: str | None, position: str, where: str | None = None) -> AlertDef:
    return AlertDef("CardJam", code24, cs, _J,
                    f"card jam: a card is stuck in the {where or position}", REMEDY_JAM, position)


def _service(name: str, code24: int, what: str, cs: str | None = None) -> AlertDef:
    return AlertDef(name, code24, cs, _S, f"printer hardware fault: {what}", REMEDY_SERVICE)


def _slave(code24: int, what: str, category: AlertCategory = _S) -> AlertDef:
    return AlertDef("SlavePrinterFault", code24, None, category,
                    f"fault reported for a second (slave) printer: {what}", REMEDY_SLAVE)


#: Every alert. The first definition of a name is the one the simulator raises (`by_name`).
ALERTS: tuple[AlertDef, ...] = (
    # -- operator intervention (gutenprint; PavoApi PAVO_DS_COVER_OPEN / REJECT_BOX_*) --------
    AlertDef("CoverOpen", 0x050001, "0100", _O,
             "cover open: the printer's cover or door is open or not latched", REMEDY_COVER),
    AlertDef("CoverOpen", 0x050101, None, _O,
             "cover open (second cover sensor): a cover is open or not latched", REMEDY_COVER),
    AlertDef("RejectBoxFull", 0x050401, None, _O,
             "reject box full: no room for another rejected card", "empty the reject box"),
    AlertDef("RejectBoxMissing", 0x050301, None, _O,
             "reject box missing: the box for rejected cards is not in place",
             "insert the reject box"),
    AlertDef("DustBoxFull", 0x0502FE, None, _O,
             "dust box needs cleaning: the printer's dust collector is full",
             "empty and clean the dust box, then reset the printer"),
    _slave(0x050201, "cover open", _O),
    # -- supplies -------------------------------------------------------------------------------
    AlertDef("RibbonMissing", 0x080004, "0201", _U,
             "ribbon missing: no ribbon is loaded", REMEDY_LOAD_RIBBON),
    AlertDef("RibbonOut", 0x080103, "0301", _U,
             "ribbon exhausted: the ribbon has no panels left", REMEDY_REPLACE_RIBBON),
    AlertDef("RibbonOut", 0x080104, None, _U,
             "ribbon exhausted: the ribbon has no panels left", REMEDY_REPLACE_RIBBON),
    AlertDef("RibbonMalfunction", _MALFUNCTION, None, _U,
             "ribbon malfunction: the ribbon is torn, slack or does not advance",
             REMEDY_RIBBON_CHECK),
    AlertDef("RibbonChipMissing", 0x0802FE, "0200", _U,
             "ribbon chip error: the chip on the ribbon is missing, damaged or loose",
             REMEDY_RIBBON_CHIP),
    AlertDef("RibbonChipError", 0x0804FE, "0200", _U,
             "ribbon chip read/write error: the ribbon's chip cannot be read", REMEDY_RIBBON_CHIP),
    AlertDef("RibbonNotAuthenticated", 0x0803FE, None, _U,
             "ribbon not authenticated: the ribbon's chip does not identify a genuine HiTi "
             "ribbon", "load a genuine HiTi CS-2xx ribbon"),
    AlertDef("RibbonNewlyInserted", 0x080007, None, _U,
             "ribbon newly inserted: the printer is still reading the new ribbon",
             "wait until the printer has read the ribbon; reset the printer if the alert stays"),
    # 0x080200: gutenprint 2024 "Unsupported ribbon type" (its 2019 copy said "Ribbon type
    # mismatch"; the reference said so too before its corrections). The mismatch codes are
    # 0x080201 / 0x080203 / 0x080230.
    AlertDef("RibbonTypeUnsupported", 0x080200, None, _U,
             "unsupported ribbon type: the loaded ribbon's type cannot be used by this printer",
             "load a YMCKO ribbon made for the HiTi CS-2xx"),
    AlertDef("RibbonTypeMismatch", 0x080201, "0202", _U,
             "ribbon type mismatch: the job needs a colour (YMC) ribbon and the loaded ribbon "
             "has no colour panels", REMEDY_RIBBON_TYPE),
    AlertDef("RibbonTypeMismatch", 0x080203, "0202", _U,
             "ribbon type mismatch: the job needs the K and O panels the loaded ribbon lacks",
             REMEDY_RIBBON_TYPE),
    AlertDef("RibbonTypeMismatch", 0x080230, None, _U,
             "ribbon type mismatch: the job needs the K and O panels the loaded ribbon lacks",
             REMEDY_RIBBON_TYPE),
    *(AlertDef("RibbonTypeMismatch", code, None, _U,
               f"ribbon type mismatch: the job was made for a {size} photo ribbon",
               REMEDY_RIBBON_TYPE)
      for code, size in ((0x080240, "4x6"), (0x080250, "5x7"), (0x080260, "6x8"))),
    AlertDef("RibbonUnsupported", 0x0806FE, "0203", _U,
             "unsupported ribbon: the ribbon is not one this printer accepts",
             "load a HiTi CS-2xx ribbon"),
    AlertDef("RibbonUnknown", 0x0808FE, None, _U,
             "unknown ribbon: the printer cannot tell which ribbon is loaded",
             "load a HiTi CS-2xx ribbon; if it is one, reseat its chip and reset the printer"),
    # No public 24-bit code for the ribbon-search and calibration faults (see assumptions).
    AlertDef("RibbonSearchFail", _MALFUNCTION, "0300", _U,
             "ribbon search fail: the ribbon sensor cannot find the panel marks (sensor offset "
             "or dirty)", REMEDY_COLOUR_OFFSET),
    AlertDef("RibbonTakeCalibrationFailed", _MALFUNCTION, "1100", _U,
             "ribbon take calibration failed: the take-side ribbon sensor could not be "
             "calibrated (dirty sensor)", REMEDY_CALIBRATE),
    AlertDef("RibbonSupplyCalibrationFailed", _MALFUNCTION, "1101", _U,
             "ribbon supply calibration failed: the supply-side ribbon sensor could not be "
             "calibrated (dirty sensor)", REMEDY_CALIBRATE),
    _slave(0x080204, "ribbon missing", _U),
    _slave(0x080207, "ribbon newly inserted", _U),
    _slave(0x080303, "ribbon exhausted", _U),
    _slave(0x0805FE, "ribbon chip read/write error", _U),
    _slave(0x0807FE, "unsupported ribbon", _U),
    _slave(0x0809FE, "unknown ribbon", _U),
    # -- input ----------------------------------------------------------------------------------
    AlertDef("InputEmpty", 0x008000, "0400", _I,
             "card out or feed error: no blank card could be fed from the input hopper",
             REMEDY_LOAD_CARDS),
    AlertDef("CardsLow", 0x008001, None, _I,
             "cards low: few blank cards are left in the input hopper",
             "add blank cards soon (rear feed slot, face up, chip inwards)", blocks=False),
    AlertDef("InputHopperMissing", 0x008008, None, _I,
             "input hopper missing: the card cassette is not in place",
             "insert the input hopper (card cassette) until it clicks"),
    # 0x008010: PavoApi "card thickness selector is not placed in the right position"; gutenprint
    # (photo printers) calls it "Paper tray/roll mismatch". The card-printer source is followed.
    AlertDef("ThicknessLever", 0x008010, None, _I,
             "card thickness selector: the lever is not in the position for the loaded cards",
             "set the card thickness lever for the loaded cards (0.76 mm cards: 0.8 mm)"),
    *(AlertDef("TrayMismatch", code, None, _I,
               f"input tray mismatch: the job expects the {tray}",
               "fit the PVC card tray in the input hopper, then feed again")
      for code, tray in ((0x008011, "photo tray"), (0x008012, "sticker 4/2/4 tray"),
                         (0x008013, "sticker 4x4 tray"), (0x008014, "sticker 1x1 tray"),
                         (0x008015, "PVC card tray"))),
    # -- jams -----------------------------------------------------------------------------------
    *(_jam(code24, cs, position) for position, (code24, cs) in JAM_PATHS.items()),
    _jam(0x03000F, None, "card path"),
    *(_jam(code, None, "card path", f"card path (paper path {n:02d})")
      for code, n in ((0x030500, 4), (0x030700, 6), (0x030800, 7), (0x030900, 8),
                      (0x030A00, 9))),
    _jam(0x030100, None, "slave card path", "card path of the slave printer"),
    _jam(0x040100, None, "slave flipper", "flipper of the slave printer"),
    _jam(0x050100, None, "slave eject box", "eject box of the slave printer"),
    _jam(0x060100, None, "between printers", "passage between master and slave printer"),
    _jam(0x070100, None, "printer exit", "exit at the end of the printer"),
    # -- warnings -------------------------------------------------------------------------------
    AlertDef("CardMismatch", 0x0100FE, "0600", _W,
             "card type mismatch: the loaded cards are not the type the job was set up for",
             "load the card type the job expects (blank chip cards), then print again"),
    AlertDef("BufferUnderrun", 0x0300FE, None, _W,
             "buffer underrun: print data did not arrive fast enough (USB transfer stalled)",
             "check the USB cable, then " + REMEDY_RESEND),
    AlertDef("CommandSequenceError", 0x0301FE, None, _W,
             "command sequence error: the printer received commands out of order",
             "reset the printer and resend the job"),
    AlertDef("FlashUnformatted", 0x0302FE, None, _W,
             "flash memory unformatted: the printer's job memory is not formatted",
             REMEDY_FIRMWARE),
    AlertDef("FlashFull", 0x0303FE, None, _W,
             "printer flash memory full: no room for the job's data", REMEDY_FIRMWARE),
    AlertDef("HeatTableIncompatible", 0x0304FE, None, _W,
             "heat table incompatible: the heating parameters do not suit this firmware",
             "reset the printer; update the printer firmware"),
    AlertDef("PrinterLocked", 0x007540, None, _W,  # PavoApi; gutenprint: "standalone mode"
             "printer locked: its security mode refuses jobs until it is unlocked",
             "unlock the printer with its password (security mode), or ask the administrator"),
    AlertDef("PrinterMode", 0x007538, None, _W,
             "device attached: a device on the printer stops it accepting host jobs",
             "detach the device from the printer, then switch it off and on"),
    AlertDef("PrinterMode", 0x007539, None, _W,
             "mobile mode: the printer does not accept host jobs in this mode",
             "switch the printer back to USB (host) mode, then switch it off and on"),
    *(AlertDef("FirmwareTooOld", code, None, _W,
               f"firmware too old: the printer's firmware cannot run this job{what}",
               "have service update the printer firmware")
      for code, what in ((0x007542, " for fine mode"), (0x007543, " for 2x6 mode"),
                         (0x007544, " for matte mode"), (0x007545, ""), (0x007546, ""))),
    AlertDef("NoFlipperModule", 0x1100000D, None, _W,  # PavoApi, a 32-bit device status
             "no flipper module: a two-sided job was sent to a printer without its flipper",
             "print one side only, or have the flipper module fitted"),
    # -- device service -------------------------------------------------------------------------
    AlertDef("DeviceService", 0x030501, "0700", _S,
             "printer hardware fault: print-head cam error", REMEDY_SERVICE),
    _service("PrinterMemoryError", 0x030001, "SRAM error"),
    _service("PrinterMemoryError", 0x030101, "SDRAM error"),  # gutenprint 2019: "Cutter error"
    _service("PrinterMemoryError", 0x030301, "NVRAM read/write error"),
    _service("PrinterMemoryError", 0x030302, "SDRAM checksum error"),
    _service("PrinterMemoryError", 0x030502, "NVRAM checksum error"),
    _service("PrinterMemoryError", 0x030602, "SRAM checksum error"),
    _service("PrinterMemoryError", 0x031201, "NAND flash error"),
    _service("ControllerError", 0x030201, "ADC (sensor converter) error"),
    _service("ControllerError", 0x030402, "DSP code checksum error"),
    _service("CamError", 0x030601, "pinch-roller cam error"),
    AlertDef("FirmwareError", 0x030701, None, _S,
             "firmware error: writing the printer firmware failed", REMEDY_FIRMWARE),
    AlertDef("FirmwareError", 0x030702, None, _S,
             "firmware error: the firmware flash fails its checksum", REMEDY_FIRMWARE),
    AlertDef("FirmwareError", 0x030802, None, _S,  # gutenprint 2019: "Wrong firmware checksum"
             "firmware error: the stored heating table fails its checksum", REMEDY_FIRMWARE),
    _service("CutterError", 0x031302, "cutter error (a card printer has no cutter: the "
             "firmware does not match the model)"),
    *(_slave(code, what) for code, what in (
        (0x030901, "ADC error"), (0x030A01, "platen cam error"), (0x030B01, "NVRAM error"),
        (0x030C02, "NVRAM CRC error"), (0x030D02, "SDRAM checksum error"),
        (0x030E02, "SRAM checksum error"), (0x030F02, "flash checksum error"),
        (0x031002, "wrong firmware checksum"), (0x031101, "communication error"))),
    # -- the CS-2xx 4-digit codes as 24-bit values (PavoApi "used for CS-2xx"; gutenprint lists
    #    the same values among its input alerts) ----------------------------------------------
    AlertDef("InputHopperMissing", 0x000008, None, _I,  # gutenprint only
             "input hopper missing: the card cassette is not in place",
             "insert the input hopper (card cassette) until it clicks"),
    AlertDef("CoverOpen", 0x000100, "0100", _O, "cover open: the printer's cover is open",
             REMEDY_COVER),
    # 0101: PavoApi "flipper cover open"; gutenprint "Cover open failure". PavoApi followed.
    AlertDef("FlipperCoverOpen", 0x000101, "0101", _O,
             "flipper cover open: the cover over the card flipper is open",
             "close the flipper cover"),
    AlertDef("RibbonChipMissing", 0x000200, "0200", _U,
             "ribbon chip missing: the ribbon's chip is not detected", REMEDY_RIBBON_CHIP),
    AlertDef("RibbonMissing", 0x000201, "0201", _U, "ribbon missing: no ribbon is loaded",
             REMEDY_LOAD_RIBBON),
    AlertDef("RibbonTypeMismatch", 0x000202, "0202", _U,
             "ribbon mismatch: the loaded ribbon does not match the job", REMEDY_RIBBON_TYPE),
    # 0203: PavoApi "ribbon type error"; gutenprint "Security check fail".
    AlertDef("RibbonUnsupported", 0x000203, "0203", _U,
             "ribbon type error: the ribbon is not a type this printer accepts",
             "load a HiTi CS-2xx ribbon"),
    *(AlertDef("RibbonTypeMismatch", code, None, _U,
               "ribbon mismatch: the loaded ribbon does not match the job", REMEDY_RIBBON_TYPE)
      for code in (0x000204, 0x000205)),
    # 0300: PavoApi "ribbon search fail"; gutenprint (photo printers) "Ribbon exhausted 01".
    AlertDef("RibbonSearchFail", 0x000300, "0300", _U,
             "ribbon search fail: the ribbon sensor cannot find the panel marks (sensor offset "
             "or dirty)", REMEDY_COLOUR_OFFSET),
    AlertDef("RibbonOut", 0x000301, "0301", _U, "ribbon exhausted: no panels left",
             REMEDY_REPLACE_RIBBON),
    AlertDef("RibbonOut", 0x000304, "0304", _U, "ribbon exhausted: no panels left",
             REMEDY_REPLACE_RIBBON),
    *(AlertDef("PrintFailed", code, cs, _U,
               "print fail: the printer could not finish printing the card (ribbon stuck or "
               "card slipped)",
               "reset the printer (the card goes to the reject box), check the ribbon, and "
               "print a new card")
      for code, cs in ((0x000302, "0302"), (0x000303, "0303"))),
    AlertDef("InputEmpty", 0x000400, "0400", _I,
             "card out: no blank card in the input hopper", REMEDY_LOAD_CARDS),
    AlertDef("InputEmpty", 0x000401, None, _I,  # gutenprint only
             "card out: no blank card in the input hopper", REMEDY_LOAD_CARDS),
    AlertDef("CardNotReady", 0x000402, None, _I,  # gutenprint only
             "card not ready: the next card did not reach the feeder",
             "reseat the cards in the input hopper (face up, chip inwards), then feed again"),
    *(_jam(0x000500 + n, f"05{n:02d}", "card path") for n in range(9)),
    AlertDef("CardMismatch", 0x000600, "0600", _W,
             "card mismatch: the loaded cards are not the type the job expects",
             "load the card type the job expects (blank chip cards), then print again"),
    AlertDef("DeviceService", 0x000700, "0700", _S, "printer hardware fault: cam error",
             REMEDY_SERVICE),
    # 0800-0803: PavoApi "flipper error"; gutenprint calls 0800 "Cam error 02".
    *(AlertDef("FlipperError", 0x000800 + n, f"080{n}", _S,
               "flipper error: the card flipper did not turn", REMEDY_FLIPPER)
      for n in range(4)),
    _service("PrinterMemoryError", 0x000900, "NVRAM error", "0900"),
    # 1000: PavoApi "ribbon error"; gutenprint "IC error".
    AlertDef("RibbonError", 0x001000, "1000", _U,
             "ribbon error: the ribbon or its chip does not work", REMEDY_RIBBON_CHECK),
    AlertDef("RibbonTakeCalibrationFailed", 0x001100, "1100", _U,
             "ribbon take calibration failed: the take-side ribbon sensor could not be "
             "calibrated (dirty sensor)", REMEDY_CALIBRATE),
    AlertDef("RibbonSupplyCalibrationFailed", 0x001101, "1101", _U,
             "ribbon supply calibration failed: the supply-side ribbon sensor could not be "
             "calibrated (dirty sensor)", REMEDY_CALIBRATE),
    _service("ControllerError", 0x001200, "ADC (sensor converter) error", "1200"),
    AlertDef("FirmwareError", 0x001300, "1300", _S,
             "firmware error: the printer firmware failed its check", REMEDY_FIRMWARE),
    AlertDef("FirmwareError", 0x001301, "1301", _S,
             "firmware error: the printer firmware failed its check", REMEDY_FIRMWARE),
    AlertDef("PowerSupplyError", 0x001400, "1400", _S,
             "power supply error: the printer's power supply fails",
             "check the power adapter and its cable, then switch the printer off and on; "
             "call service if it persists"),
    _service("CutterError", 0x001500, "cutter error (a card printer has no cutter: the "
             "firmware does not match the model)"),
)  # fmt: skip

_BY_CS: dict[tuple[int, str], AlertDef] = {}
_BY_CODE: dict[int, AlertDef] = {}
_BY_NAME: dict[str, AlertDef] = {}
for _a in ALERTS:
    if _a.cs_code is not None:
        _BY_CS.setdefault((_a.code24, _a.cs_code), _a)
    _BY_CODE.setdefault(_a.code24, _a)
    _BY_NAME.setdefault(_a.name, _a)
_BY_POSITION: dict[str, AlertDef] = {
    position: _BY_CS[(code24, cs)] for position, (code24, cs) in JAM_PATHS.items()
}


def by_name(name: str) -> AlertDef:
    """The first alert definition named `name` (for a jam: the generic card-path jam)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(name) from None


def jam_alert(position: str) -> AlertDef:
    """The jam alert for a card stuck at `position` (one of the JAM_PATHS positions)."""
    return _BY_POSITION.get(position, _BY_POSITION["card path"])


def decode(code24: int, cs_code: str | None, category: AlertCategory | None = None) -> AlertDef:
    """Name an alert from the wire; the CS code refines codes shared by several faults, and
    names an alert whose 24-bit code is unknown (the 4-digit code read as hex)."""
    cs = cs_code if cs_code and cs_code != NO_CS_CODE else None
    found = _BY_CS.get((code24, cs)) if cs else None
    if found is None:
        found = _BY_CODE.get(code24)
    if found is None and cs and len(cs) == 4:
        try:
            found = _BY_CODE.get(int(cs, 16))
        except ValueError:
            found = None
    if found is not None:
        return found
    return AlertDef(
        "UnknownAlert",
        code24,
        cs,
        category if category is not None else AlertCategory.WARNING,
        f"unknown alert 0x{code24:06X}" + (f" (code {cs})" if cs else "")
        + ": the printer reported a fault this software does not know",
        "note the code, switch the printer off and on, and report the code to service if it "
        "persists",
    )
