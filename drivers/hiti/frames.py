"""HiTi A5 wire framing, declared with `construct` (reference/hiti-cs220e.md sections 2 and 7.1).

Everything here is public, reverse-engineered HiTi framing (gutenprint `backend_hiti.c`, HiTi SDK
headers): the A5 command/ack frame, the 24-bit-length bulk panel header, the 3-byte status
summary, alert lists, supplies and statistics replies. Payloads of the card-specific commands
are NOT public; their layouts live in `assumptions.py`, never here.

All multi-byte fields are big-endian, as on the wire.
"""

from __future__ import annotations

from enum import IntEnum

from construct import (
    Array,
    BitStruct,
    Bytes,
    Const,
    Container,
    Default,
    Flag,
    Int8ub,
    Int16ub,
    Int24ub,
    Int32ub,
    PaddedString,
    Padding,
    Rebuild,
    Struct,
    len_,
    this,
)

FRAME_HEADER = 0xA5
CMD_STATUS_OK = 0x50
#: Status bit set in a reply when the command failed (0xD8 and 0xDB are seen on real devices).
STATUS_FAILED = 0x80
#: Size of the fixed part of every frame: hdr, u16 len, status, u16 cmd.
HEADER_SIZE = 6
#: Bytes counted by `len` besides the payload: status + cmd.
LEN_OVERHEAD = 3
#: Bytes counted by the bulk header's 24-bit length besides the raw data:
#: status + cmd + len_lo + start_line + num_lines.
BULK_OVERHEAD = 8
BULK_HEADER_SIZE = 11
#: Upper bound of `num_lines` in one SEND_PANEL_DATA (gutenprint).
MAX_LINES_PER_CHUNK = 3000
#: USB full-speed bulk packet size; the reply payload is read in chunks of this size.
USB_PACKET = 64


class Opcode(IntEnum):
    """Command codes known from public sources (section 2.2). CS = card-series specific."""

    GET_SUMMARY = 0x0100
    GET_OPTIONS = 0x0104
    RESET = 0x0301
    GET_STATUS = 0x0400
    GET_INPUT_STATUS = 0x0401
    ALERTS_INPUT = 0x0403
    ALERTS_JAM = 0x0405
    ALERTS_OPERATOR = 0x0406
    ALERTS_WARNING = 0x0407
    ALERTS_SERVICE = 0x0408
    ALERTS_SUPPLIES = 0x040A
    GET_STATS = 0x040B
    GET_SUPPLIES = 0x040C
    START_JOB = 0x0500
    END_JOB = 0x0501
    QUERY_JOB_COMPLETED = 0x0502
    QUERY_JOBS = 0x0503
    GET_DEVICE_INFO = 0x8000
    GET_CALIBRATION = 0x8001
    GET_PRINT_COUNT = 0x8005
    GET_SENSOR_CAL = 0x8006
    GET_SERIAL = 0x8007
    GET_CORRECTION_STATUS = 0x8008  # CS
    GET_PID_REGION = 0x8009
    GET_TL_VOLTAGE = 0x800E
    GET_RIBBON_VENDOR = 0x800F
    #: ERDC_UNK0, meaning unknown: the first command gutenprint sends to a roll or card printer
    #: when it connects (backend_hiti.c hiti_attach, 2019 and 2024); reply up to 15 bytes.
    GET_UNKNOWN_8010 = 0x8010
    GET_HIGHLIGHT_ADJ = 0x801C
    SET_FORMAT = 0x8100
    #: EFD_CHS "Color & Heating Setting", 2 args; gutenprint sends {0, 1} (default tables)
    #: after START_JOB when it has no heat table of its own.
    SET_HEATING = 0x8101
    SET_COLOR_HEATING = 0x8102  # CS, 3 args
    SET_INPUT_ID = 0x8103  # CS
    START_PAGE = 0x8200
    END_PAGE = 0x8201
    # CS panel starts, first side then second side (note: differs from the photo models).
    START_Y = 0x8202
    START_M = 0x8203
    START_C = 0x8204
    START_DK = 0x8205
    START_RK = 0x8206
    START_L = 0x8207
    START_O = 0x8208
    START_Y2 = 0x8209
    START_M2 = 0x820A
    START_C2 = 0x820B
    START_DK2 = 0x820C
    START_RK2 = 0x820D
    START_L2 = 0x820E
    START_O2 = 0x820F
    SEND_HEAT_TABLE = 0x8303  # 24-bit length + plane byte, then raw data (HeatTableHeader)
    SEND_PANEL_DATA = 0x8309
    SEND_HEAT_TONE = 0x830B  # header, ack, then the raw payload
    SEND_HEAT_TONE_CS = 0x830C  # CS; header, ack, then the raw payload
    SEND_VOLTAGE_DROP = 0xE002  # header, ack, then the raw payload
    CLEAN_PATH = 0xE023
    MOVE_TO_CONTACT = 0xE02E  # CS
    MOVE_TO_MAG = 0xE02F  # CS (gutenprint names it; PavoApi.h 1.7.11.1100 has no MoveCard
    # position for the magstripe station, so nothing here uses it)
    MOVE_TO_CONTACTLESS = 0xE030  # CS
    MOVE_TO_EJECT_BOX = 0xE031  # CS, the reject box
    MOVE_TO_HOPPER = 0xE037  # CS, the output hopper


class ColorSeq(IntEnum):
    """SF colour-sequence bits (section 2.2)."""

    Y = 0x01
    M = 0x02
    C = 0x04
    DK = 0x08
    RK = 0x10
    OM = 0x20
    O = 0x80  # noqa: E741 - HiTi's name for the overcoat panel


class RibbonType(IntEnum):
    """PAVO ribbon type codes (section 3.1); 255 = missing or unsupported."""

    YMCKO = 0
    K = 1
    YMCO = 2
    KO = 3
    YMCKOK = 4
    HALF_YMCKO = 5
    GOLD = 6
    SILVER = 7
    WHITE = 8
    YMCKFO = 12
    NONE = 255


# --- frames ---------------------------------------------------------------------------------

#: The 6 bytes every reply starts with (and every command, before its payload).
Header = Struct(
    "hdr" / Const(bytes([FRAME_HEADER])),
    "length" / Int16ub,
    "status" / Int8ub,
    "cmd" / Int16ub,
)

#: A complete command (host -> printer) or reply (printer -> host) frame.
Command = Struct(
    "hdr" / Const(bytes([FRAME_HEADER])),
    "length" / Rebuild(Int16ub, len_(this.payload) + LEN_OVERHEAD),
    "status" / Default(Int8ub, CMD_STATUS_OK),
    "cmd" / Int16ub,
    "payload" / Bytes(this.length - LEN_OVERHEAD),
)

#: SEND_PANEL_DATA header: a 24-bit length (data_len + 8) split into u16 `len_hi` and u8
#: `len_lo`, then the first line and the number of lines; the raw plane follows separately.
BulkHeader = Struct(
    "hdr" / Const(bytes([FRAME_HEADER])),
    "len_hi" / Int16ub,
    "status" / Const(CMD_STATUS_OK, Int8ub),
    "cmd" / Const(int(Opcode.SEND_PANEL_DATA), Int16ub),
    "len_lo" / Int8ub,
    "start_line" / Int16ub,
    "num_lines" / Int16ub,
)

#: Commands sent as a 6-byte header whose length counts a payload that follows only after the
#: printer acked the header (gutenprint backend_hiti.c: hiti_shptc 0x830B, hiti_cvd 0xE002;
#: 0x830C is the CS variant of 0x830B).
HEADER_THEN_PAYLOAD = frozenset({Opcode.SEND_HEAT_TONE, Opcode.SEND_HEAT_TONE_CS,
                                 Opcode.SEND_VOLTAGE_DROP})

#: SEND_HEAT_TABLE (0x8303, gutenprint struct hiti_seht2): a 24-bit length (data_len + 5) split
#: like the panel header, then the plane number; the raw data follows the printer's ack.
HEAT_TABLE_OVERHEAD = 5
HeatTableHeader = Struct(
    "hdr" / Const(bytes([FRAME_HEADER])),
    "len_hi" / Int16ub,
    "status" / Const(CMD_STATUS_OK, Int8ub),
    "cmd" / Const(int(Opcode.SEND_HEAT_TABLE), Int16ub),
    "len_lo" / Int8ub,
    "plane" / Int8ub,
)
HEAT_TABLE_HEADER_SIZE = 8

#: SET_HEATING payload gutenprint sends to use the printer's default tables.
HEATING_DEFAULT_TABLES = b"\x00\x01"

#: GET_PRINT_COUNT argument gutenprint uses for the life counter (hiti_query_stats, 2024);
#: the reply is one u32be on the CS/P52x/P7xx families (8 bytes on the P51x).
PRINT_COUNT_ARG = 0x01

#: Job ids stay in 1..0x7FFF (gutenprint hiti_attach: `jobid & 0x7fff`, 0 becomes 1).
MAX_JOB_ID = 0x7FFF

#: Reply to GET_STATUS (0x0400), 3 bytes, bits parsed MSB first.
StatusSummary = BitStruct(
    "busy" / Flag, Padding(4), "resend" / Flag, Padding(1), "power_on" / Flag,
    Padding(4), "input" / Flag, Padding(1), "jam" / Flag, "supplies" / Flag,
    Padding(4), "operator" / Flag, "service" / Flag, "warning" / Flag, Padding(1),
)  # fmt: skip

#: One alert of the CS family: 24-bit code, an aux byte, the 4-digit ASCII CS code.
AlertCS = Struct(
    "code24" / Int24ub,
    "aux" / Int8ub,
    "ascii" / PaddedString(4, "ascii"),
)
AlertList = Struct("count" / Int8ub, "alerts" / Array(this.count, AlertCS))

#: GET_STATS (0x040B): u8 count, then {u8 type, u32be value}; type 3 = ribbon prints left.
#: gutenprint (hiti_query_statistics, 2024) reads at most 30 bytes and, through its loop
#: arithmetic, only the FIRST record: the ribbon-remaining record comes first.
StatRecord = Struct("type" / Int8ub, "value" / Int32ub)
StatsReply = Struct("count" / Int8ub, "records" / Array(this.count, StatRecord))
STAT_RIBBON_REMAINING = 0x03

#: GET_SUPPLIES (0x040C, arg 0x00): 5 bytes, ribbon type at [2]. The other bytes are unknown
#: publicly; `assumptions.py` interprets `unk`.
RibbonInfo = Struct("unk" / Int16ub, "type" / Int8ub, "unk2" / Int16ub)

#: START_JOB / END_JOB payload and reply.
Job = Struct("lun" / Const(0, Int8ub), "jobid" / Int16ub)

#: QUERY_JOBS (0x0503) reply: count, then 4 rows. Row status: 0 printing, 1 waiting,
#: 3 suspended, 0x80 error.
JobRow = Struct("lun" / Int8ub, "jobid" / Int16ub, "status" / Int8ub)
JobQueue = Struct("count" / Int8ub, "rows" / Array(4, JobRow))
JOB_ROWS = 4


# --- helpers --------------------------------------------------------------------------------


def build_command(cmd: int, payload: bytes = b"", status: int = CMD_STATUS_OK) -> bytes:
    """One A5 frame: header, u16be length (payload + 3), status, u16be cmd, payload."""
    return Command.build({"cmd": int(cmd), "payload": bytes(payload), "status": status})


def parse_header(data: bytes) -> Container:
    """Parse the 6-byte frame start; raises construct errors when malformed."""
    return Header.parse(data[:HEADER_SIZE])


def build_bulk_header(data_len: int, start_line: int, num_lines: int) -> bytes:
    """SEND_PANEL_DATA header for `data_len` raw bytes covering `num_lines` lines."""
    total = data_len + BULK_OVERHEAD
    if total >= 1 << 24:
        raise ValueError(f"panel chunk of {data_len} bytes does not fit a 24-bit length")
    return BulkHeader.build(
        {
            "len_hi": total >> 8,
            "len_lo": total & 0xFF,
            "start_line": start_line,
            "num_lines": num_lines,
        }
    )


def build_heat_table_header(data_len: int, plane: int) -> bytes:
    """SEND_HEAT_TABLE header for `data_len` raw bytes of heat table `plane`."""
    total = data_len + HEAT_TABLE_OVERHEAD
    if total >= 1 << 24:
        raise ValueError(f"heat table of {data_len} bytes does not fit a 24-bit length")
    return HeatTableHeader.build({"len_hi": total >> 8, "len_lo": total & 0xFF, "plane": plane})


def heat_table_data_len(header: Container) -> int:
    """Raw data length announced by a parsed HeatTableHeader."""
    return ((header.len_hi << 8) | header.len_lo) - HEAT_TABLE_OVERHEAD


def bulk_data_len(header: Container) -> int:
    """Raw data length announced by a parsed BulkHeader."""
    return ((header.len_hi << 8) | header.len_lo) - BULK_OVERHEAD


def build_status(
    *,
    busy: bool = False,
    resend: bool = False,
    power_on: bool = False,
    input: bool = False,
    jam: bool = False,
    supplies: bool = False,
    operator: bool = False,
    service: bool = False,
    warning: bool = False,
) -> bytes:
    """The 3-byte status summary with the given bits set."""
    return StatusSummary.build(
        {
            "busy": busy,
            "resend": resend,
            "power_on": power_on,
            "input": input,
            "jam": jam,
            "supplies": supplies,
            "operator": operator,
            "service": service,
            "warning": warning,
        }
    )
