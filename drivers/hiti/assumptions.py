"""ASSUMPTIONS: every CS-220e payload, reply layout and opcode meaning that is NOT public.

Only the names of the card-specific commands are public (reference/hiti-cs220e.md section 6).
Everything below is a proposal (section 7, [PROP]/[INF]) that the driver and the simulator both
use, kept in this one module so that a USB capture of a real CS-220e can correct it without
touching the rest of the code. Each item says what is assumed. Framing, opcode numbers that are
named in public sources, status bits and alert codes are NOT here: they are in `frames.py` and
`alerts.py`.
"""

from __future__ import annotations

from construct import Int8ub, Int16sb, Int16ub, Struct

from cardstation.drivers.hiti.frames import ColorSeq, Opcode, RibbonType
from cardstation.drivers.hiti.state import CardPosition, TagState

# --- move commands --------------------------------------------------------------------------

#: ASSUMPTION: the CS move commands (0xE02E contact, 0xE031 eject box, 0xE037 hopper) take no
#: payload and reply with an empty payload; completion is seen by polling GET_STATUS until
#: BUSY clears (reference section 2.2 [INF]).
MOVE_PAYLOAD = b""

#: ASSUMPTION, INVENTED OPCODE: no public firmware opcode moves a card to the print (standby)
#: position; PavoApi's MoveCard(7/10) must map onto something unknown. 0xE032 sits in the gap of
#: the public CS move range (0xE02E..0xE037) and is used by the simulator only. Set it to None
#: if a capture shows otherwise; the driver then refuses `move_to_print_position()`.
MOVE_TO_PRINT_POSITION: int | None = 0xE032

# --- card position --------------------------------------------------------------------------

#: ASSUMPTION: RDS_RIS Input Status (0x0401, a real 4-byte reply whose byte [1] is the media
#: type on photo models) reports the card on the CS-2xx as
#: {u8 input_state, u8 card_type, u8 card_position (PavoApi numbering), u8 flags}.
#: No firmware card-position query is public; with this set to False the driver relies on its
#: own tracking only.
CARD_POSITION_QUERY = True
InputStatus = Struct(
    "input_state" / Int8ub,
    "card_type" / Int8ub,
    "card_position" / Int8ub,
    "flags" / Int8ub,
)
INPUT_FLAG_HOPPER_EMPTY = 0x01
INPUT_FLAG_REJECT_FULL = 0x02


def decode_card_position(value: int) -> CardPosition:
    """ASSUMPTION: the position byte uses PavoApi's DEVINFO_CARD_POSITION numbers."""
    try:
        return CardPosition(value)
    except ValueError:
        return CardPosition.UNKNOWN


# --- identity -------------------------------------------------------------------------------

#: ASSUMPTION: the GET_SUMMARY reply of the CS-2xx follows the photo models' layout for the
#: model id (length at [33], text at [34]) and carries the firmware version as a length-prefixed
#: string right after the id. Total reply length is padded to 80 bytes (79-97 seen on photo
#: models).
SUMMARY_ID_OFFSET = 33
SUMMARY_LENGTH = 80
#: Argument of GET_SERIAL (public: 18); the reply is 18 ASCII characters, NUL padded.
SERIAL_ARG = 18
SERIAL_LENGTH = 18


def build_summary(model: str, firmware: str) -> bytes:
    """Summary reply as the simulator sends it (see SUMMARY_ID_OFFSET)."""
    head = bytearray(SUMMARY_ID_OFFSET)
    mid = bytes([len(model)]) + model.encode() + bytes([len(firmware)]) + firmware.encode()
    body = bytes(head) + mid
    return body.ljust(SUMMARY_LENGTH, b"\x00")


def parse_summary(data: bytes) -> tuple[str, str]:
    """(model, firmware) from a summary reply; ValueError when it is too short to hold one."""
    i = SUMMARY_ID_OFFSET
    if len(data) <= i:
        raise ValueError(f"summary reply of {len(data)} bytes, the model name is at {i}")
    n = data[i]
    model = data[i + 1 : i + 1 + n].decode("ascii", "replace")
    j = i + 1 + n
    firmware = ""
    if j < len(data):
        m = data[j]
        firmware = data[j + 1 : j + 1 + m].decode("ascii", "replace")
    return model, firmware


# --- supplies -------------------------------------------------------------------------------

#: ASSUMPTION: the high byte of RibbonInfo.unk (GET_SUPPLIES, 0x040C) is the ribbon tag state:
#: 0 tag read, 1 no tag, 2 tag present but unreadable. The wire ribbon type at [2] uses the
#: PavoApi ribbon codes (255 = none).
_TAG_CODES = {0: TagState.PRESENT, 1: TagState.ABSENT, 2: TagState.UNREADABLE}
_TAG_VALUES = {v: k for k, v in _TAG_CODES.items()}


def decode_ribbon_tag(unk: int) -> TagState:
    return _TAG_CODES.get(unk >> 8, TagState.UNREADABLE)


def encode_ribbon_tag(tag: TagState) -> int:
    return _TAG_VALUES[tag] << 8


#: The print count is read with GET_PRINT_COUNT (0x8005, argument 01, u32be) as gutenprint
#: reads it; GET_STATS carries only the ribbon-remaining record (type 3, public). An earlier
#: ASSUMED statistics record 0x01 for the print count, placed before it, is gone: gutenprint
#: reads only the first statistics record.

#: ASSUMPTION: default prints per roll, not sourced (reference section 7.3).
RIBBON_CAPACITY: dict[int, int] = {
    RibbonType.YMCKO: 200,
    RibbonType.YMCKOK: 200,
    RibbonType.K: 1000,
    RibbonType.KO: 600,
    RibbonType.YMCO: 250,
}

#: ASSUMPTION: panels each ribbon type carries (for the type-mismatch check).
RIBBON_PANELS: dict[int, int] = {
    RibbonType.YMCKO: ColorSeq.Y | ColorSeq.M | ColorSeq.C | ColorSeq.RK | ColorSeq.O,
    RibbonType.YMCKOK: ColorSeq.Y | ColorSeq.M | ColorSeq.C | ColorSeq.RK | ColorSeq.O,
    RibbonType.HALF_YMCKO: ColorSeq.Y | ColorSeq.M | ColorSeq.C | ColorSeq.RK | ColorSeq.O,
    RibbonType.YMCKFO: ColorSeq.Y | ColorSeq.M | ColorSeq.C | ColorSeq.RK | ColorSeq.O,
    RibbonType.K: ColorSeq.RK,
    RibbonType.KO: ColorSeq.RK | ColorSeq.O,
    RibbonType.YMCO: ColorSeq.Y | ColorSeq.M | ColorSeq.C | ColorSeq.O,
}

# --- print job ------------------------------------------------------------------------------

#: ASSUMPTION: SET_FORMAT (0x8100, real opcode) payload for the CS-2xx.
CardFormat = Struct(
    "sides" / Int8ub,
    "ribbon_type" / Int8ub,
    "colorseq_front" / Int8ub,
    "colorseq_back" / Int8ub,
    "cols" / Int16ub,
    "rows" / Int16ub,
)
CARD_COLS = 1014
CARD_ROWS = 642

#: Panel start opcodes per side (public names 0x8202..0x820F; ASSUMPTION: side 1 = the first
#: seven, side 2 = the next seven, one duplex job carrying both sides within one page).
PANEL_OPCODES: dict[int, dict[str, int]] = {
    1: {"Y": Opcode.START_Y, "M": Opcode.START_M, "C": Opcode.START_C, "DK": Opcode.START_DK,
        "K": Opcode.START_RK, "L": Opcode.START_L, "O": Opcode.START_O},
    2: {"Y": Opcode.START_Y2, "M": Opcode.START_M2, "C": Opcode.START_C2,
        "DK": Opcode.START_DK2, "K": Opcode.START_RK2, "L": Opcode.START_L2,
        "O": Opcode.START_O2},
}  # fmt: skip
PANEL_BY_OPCODE: dict[int, tuple[int, str]] = {
    op: (side, name) for side, panels in PANEL_OPCODES.items() for name, op in panels.items()
}
#: Panel order within a side (K = resin black, O = overcoat). ASSUMPTION.
PANEL_ORDER = ("Y", "M", "C", "K", "O")
PANEL_COLORSEQ = {"Y": ColorSeq.Y, "M": ColorSeq.M, "C": ColorSeq.C, "K": ColorSeq.RK,
                  "O": ColorSeq.O, "DK": ColorSeq.DK}  # fmt: skip


def colorseq(panels: set[str] | frozenset[str]) -> int:
    """SF colour-sequence bits for a set of panel names."""
    bits = 0
    for name in panels:
        bits |= PANEL_COLORSEQ[name]
    return bits


# --- reset, calibration ---------------------------------------------------------------------

#: RESET args (public): 1 reset, 2 soft reset. ASSUMPTION: a full reset includes the ribbon
#: search and the ribbon mark-sensor calibration (power-on ribbon search, section 7.5), so the
#: driver calibrates by RESET(1) and reads the result with GET_SENSOR_CAL.
RESET_FULL = 0x01
RESET_SOFT = 0x02

#: ASSUMPTION: GET_SENSOR_CAL (0x8006, real "LED calibration", meaning unknown) replies 10 bytes:
#: level/threshold for the take, supply and mark sensors, signed offset in micrometres, dirt %,
#: result (0 ok).
SensorCalReply = Struct(
    "take_level" / Int8ub,
    "take_threshold" / Int8ub,
    "supply_level" / Int8ub,
    "supply_threshold" / Int8ub,
    "mark_level" / Int8ub,
    "mark_threshold" / Int8ub,
    "offset_um" / Int16sb,
    "dirt_percent" / Int8ub,
    "result" / Int8ub,
)

# --- error replies --------------------------------------------------------------------------

#: ASSUMPTION: status byte of a reply to a frame the device could not parse or does not know
#: (0xD8 is seen with errors on real devices).
STATUS_BAD_FRAME = 0xD8
#: ASSUMPTION: status byte of a reply to a well-formed command refused in the current state
#: (busy, an alert blocks it, sequence error). 0xDB is seen with errors on real devices.
STATUS_REJECTED = 0xDB

#: Jam codes per card position. SOURCED: 0x030000 "card jam in card path", 0x040000 "card jam
#: in flipper", 0x050000 "card jam in eject box" (PavoApi.h 1.7.11.1100, PAVO_DS_CARD_JAM1-3).
#: (Earlier revisions of this table put the flipper and reject-box jams on 0x0305xx / 0x0307xx,
#: which no source supports; the reference's jam section said the same before its corrections.)
#: ASSUMPTION: the feeder, contact-station, print-position and output jams use gutenprint's
#: "paper jam in paper path 01/02/03/05" codes (0x030200, 0x030300, 0x030400, 0x030600,
#: backend_hiti.c 2024-06); which path is which card position is not public. ASSUMPTION: the
#: CS 4-digit codes 0500-0506 sent with them (PavoApi lists 0500-0508 "card jam" without
#: positions).
JAM_PATHS: dict[str, tuple[int, str]] = {
    "card path": (0x030000, "0500"),
    "feeder": (0x030200, "0501"),
    "contact station": (0x030300, "0502"),
    "print position": (0x030400, "0503"),
    "flipper": (0x040000, "0504"),
    "output": (0x030600, "0505"),
    "reject box": (0x050000, "0506"),
}

#: ASSUMPTION: the ribbon-search and ribbon-calibration faults have no public 24-bit code;
#: they are sent as 0x080105 "ribbon malfunction" and told apart by their CS codes
#: 0300 / 1100 / 1101.
RIBBON_MALFUNCTION_CODE24 = 0x080105

#: EDM_CPP Clean Paper Path (0xE023) takes ONE argument (gutenprint backend_hiti.c 2024,
#: "1 arg XX", marked unverified there). ASSUMPTION: its value, 0x00; the operator feeds a
#: cleaning card and completion is seen by polling BUSY.
CLEAN_PATH_ARG = 0x00

# --- replies the simulator gives to gutenprint's connection queries ---------------------------

#: ASSUMPTION: contents of the replies to the queries gutenprint sends when it connects to a
#: CS-2xx (backend_hiti.c hiti_attach, 2024: 0x8010, 0x0100, 0x040C, 0x0401, 0x8001, 0x800F,
#: 0x8009, 0x801C, 0x8007, 0x8000; then 0x800E, 0x8006, 0x0104, 0x040B, 0x0400, 0x8005, 0x0503).
#: Only their sizes are public (gutenprint's reply buffers, noted per item); a reply longer
#: than the buffer fails gutenprint's "Response too long" check, so each stays within it.
UNKNOWN_8010_REPLY = bytes(15)  # unk_8010[15]; meaning unknown
CALIBRATION_REPLY = bytes([0, 0])  # struct hiti_calibration {horiz, vert}
HIGHLIGHT_ADJ_REPLY = bytes(6)  # "00 YY MM CC 00 00", all adjustments 0
TL_VOLTAGE_REPLY = bytes(2)  # rtlv[2]; conversion unknown
#: struct hiti_rpidm {u16be usb_pid, u8 region}: CS-220e PID 0x030A, region 0x22 "CN".
PID_REGION_REPLY = bytes([0x03, 0x0A, 0x22])
#: struct hiti_erdc_rs (29 bytes, big endian): tph_seg, stride, dpi_cols, dpi_rows, cols, rows,
#: vertUnitInstalled, y/m/c/o speed, overheat, heater-off, hwFeature1, fwFeature1, preheat,
#: dpi_rows2, dpi_rows3, hwFeature2, overheatTempS, overheatTempOT. ASSUMED values for a 300
#: dpi card head: 1014 x 642 dots (the PavoApi page size), no vertical unit (0xFFFF).
DEVICE_INFO_REPLY = b"".join((
    bytes([0x1E]),  # tph_seg
    *(v.to_bytes(2, "big") for v in (1014, 300, 300, 1014, 642, 0xFFFF)),
    bytes([10, 10, 10, 10, 60, 40, 0, 0, 40]),  # speeds, temperatures, feature bits
    bytes(7),  # dpi_rows2, dpi_rows3, hwFeature2, overheatTempS, overheatTempOT
))
#: RDC_ROC option list: {u8 type, u8 len, ascii}..., ends with type 0. ASSUMED entries for the
#: CS-220e's flipper and contact encoder.
OPTIONS_REPLY = b"\x01\x07Flipper\x02\x0fContact encoder\x00"
