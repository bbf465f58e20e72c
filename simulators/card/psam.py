"""Simulated PSAM (reader-side SAM) for 2nd-generation style key diversification.

Confirmed command shapes [C2 ssc-chip.md §8.2]:

- ``00 A4 04 00 06 D15600000590`` (application by name) or ``00 A4 00 00 02 DF01``;
- ``BF DE P1 P2 Lc <factors> <R8>``: diversify key P1P2 (4812 UK, 4813 EF0D UK, 4810 PUK,
  4809 STK) by 1/2/3 factors (Lc 10/18/20) and the card challenge R8; answers 9000;
- ``80 FA 00 00 08 X8`` encrypt -> ``6108`` -> ``00 C0 00 00 08`` -> C8;
- ``80 FA 05 00 Lc IV || data`` MAC mode -> ``61xx`` -> GET RESPONSE -> last CBC block (callers
  take the first 4 bytes for UNBLOCK).

Proposals [P]:

- keys 4811 (RK, card key 0A) and 4808 (INT) in addition; unknown P1P2 -> 6A88;
- BFDE/80FA need the application selected (else 6985); 80FA without a prior BFDE -> 6985;
- 80FA data must be whole cipher blocks (the caller pads, as the S7 MAC sample does), else 6700;
  with an SM4 PSAM the external-auth input is ``R8 || X8`` (16 bytes) -> 6110;
- the terminal number (终端机编号, 12 digits, e.g. 410700000001) is EF ``0016`` under the MF,
  6 bytes BCD, read with ``00 B0 96 00 06`` (SFI 16) or ``00 A4 00 00 02 0016`` +
  ``00 B0 00 00 06`` (FID 0016 as in many PBOC-style PSAMs); EF ``0015`` holds the 10-byte PSAM
  serial (BCD).
- the key scheme is :mod:`cardstation.personalization.keys.scheme` (NOT the ministry's).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

from cardstation.personalization.keys import scheme
from cardstation.personalization.keys.scheme import PSAM_KEY_USAGES, TEST_MASTER_KEYS, KeyUsage

from .apdu import Apdu, Response
from .atr import build_atr
from .base import CardOS, Command, cmd
from .files import DF, EF, FREE, NEVER, TransparentEF
from .layout import fci
from .sw import SW, SwError, sw_wrong_le
from .tlv import digits_to_bcd

PSAM_AID = bytes.fromhex("D15600000590")
PSAM_DF_FID = 0xDF01
TERMINAL_EF_FID = 0x0016
SERIAL_EF_FID = 0x0015
JSON_FORMAT = "cardstation.psam/1"


class Psam(CardOS):
    """Simulated PSAM holding the (TEST-ONLY by default) master keys."""

    COMMANDS: ClassVar[Mapping[int, Command]] = {
        0xA4: cmd("_select"),
        0xB0: cmd("_read_binary"),
        0xDE: cmd("_diversify", 0xBF),
        0xFA: cmd("_encrypt", 0x80),
    }

    def __init__(
        self,
        *,
        alg: int = scheme.Alg.TDES,
        terminal_number: str = "410700000001",
        serial: str = "41070000000000000001",
        vendor: str = "CS",
        master_keys: Mapping[KeyUsage, bytes] | None = None,
    ) -> None:
        if len(terminal_number) != 12 or not terminal_number.isdigit():
            raise ValueError("terminal number is 12 digits")
        if len(serial) != 20 or not serial.isdigit():
            raise ValueError("PSAM serial is 20 digits")
        scheme.block_size(alg)  # validates the algorithm
        super().__init__(
            build_atr(vendor, b"\x50\x01", terminal_number[:6], bytes.fromhex(serial[-8:]))
        )
        self.alg = int(alg)
        self.terminal_number = terminal_number
        self.serial = serial
        self.vendor = vendor
        self.master_keys: dict[KeyUsage, bytes] = dict(master_keys or TEST_MASTER_KEYS)
        self.mf = DF("3F00", 0x3F00)
        self.app = DF("DF01", PSAM_DF_FID, PSAM_AID)
        terminal_ef = TransparentEF("EF0016", TERMINAL_EF_FID, 0x16, 6, FREE, NEVER)
        terminal_ef.data[:] = digits_to_bcd(terminal_number)
        serial_ef = TransparentEF("EF0015", SERIAL_EF_FID, 0x15, 10, FREE, NEVER)
        serial_ef.data[:] = digits_to_bcd(serial)
        self.mf.add(serial_ef, terminal_ef, self.app)
        self.current_df: DF = self.mf
        self.current_ef: EF | None = None
        self.session_key: bytes | None = None

    def _reset_volatile(self) -> None:
        super()._reset_volatile()
        self.current_df = self.mf
        self.current_ef = None
        self.session_key = None

    # --- SELECT -------------------------------------------------------------------------------
    def _select(self, apdu: Apdu) -> Response:
        if apdu.p2 not in (0x00, 0x0C):
            raise SwError(SW.WRONG_P1P2)
        node: DF | EF | None = None
        if apdu.p1 == 0x00 and not apdu.data:
            # SELECT MF with no data, `00 A4 00 00 00`, as field readers open the PSAM before
            # reading 0015/0016 (a7082633/HDOS_VC6 ICCInter2/ICCInter.cpp); ISO 7816-4.
            node = self.mf
        elif apdu.p1 == 0x01:
            if len(apdu.data) != 2:
                raise SwError(SW.WRONG_LENGTH)
            child = self.current_df.child_by_fid(int.from_bytes(apdu.data, "big"))
            node = child if isinstance(child, DF) else None
        elif apdu.p1 in (0x00, 0x02):
            if len(apdu.data) != 2:
                raise SwError(SW.WRONG_LENGTH)
            fid = int.from_bytes(apdu.data, "big")
            if fid == 0x3F00 and apdu.p1 == 0x00:
                node = self.mf
            else:
                child = self.current_df.child_by_fid(fid) or self.mf.child_by_fid(fid)
                if isinstance(child, EF) or (isinstance(child, DF) and apdu.p1 == 0x00):
                    node = child
        elif apdu.p1 == 0x04:
            if not 1 <= len(apdu.data) <= 16:
                raise SwError(SW.WRONG_LENGTH)
            node = self.app if apdu.data == PSAM_AID else None
        else:
            raise SwError(SW.WRONG_P1P2)
        if node is None:
            raise SwError(SW.FILE_NOT_FOUND)
        if isinstance(node, EF):
            self.current_ef = node
            return Response()
        self.current_df, self.current_ef, self.session_key = node, None, None
        return Response() if apdu.p2 == 0x0C else self._t0_out(fci(node))

    # --- READ BINARY (terminal number) --------------------------------------------------------
    def _read_binary(self, apdu: Apdu) -> Response:
        le = apdu.require_le()
        if apdu.p1 & 0x80:
            if apdu.p1 & 0x60:
                raise SwError(SW.WRONG_P1P2)
            ef = self.current_df.ef_by_sfi(apdu.p1 & 0x1F) or self.mf.ef_by_sfi(apdu.p1 & 0x1F)
            if ef is None:
                raise SwError(SW.FILE_NOT_FOUND)
            self.current_ef = ef
            offset = apdu.p2
        else:
            if self.current_ef is None:
                raise SwError(SW.NO_CURRENT_EF)
            ef, offset = self.current_ef, (apdu.p1 << 8) | apdu.p2
        if not isinstance(ef, TransparentEF):
            raise SwError(SW.FILE_STRUCTURE)
        if offset >= ef.size:
            raise SwError(SW.WRONG_OFFSET)
        available = ef.size - offset
        if le > available:
            raise SwError(sw_wrong_le(available))
        return Response(bytes(ef.data[offset : offset + (le or available)]))

    # --- BF DE: diversify ---------------------------------------------------------------------
    def _require_app(self) -> None:
        if self.current_df is not self.app:
            raise SwError(SW.CONDITIONS_NOT_SATISFIED)

    def _diversify(self, apdu: Apdu) -> Response:
        self._require_app()
        usage = PSAM_KEY_USAGES.get(apdu.p1p2())
        if usage is None or usage not in self.master_keys:
            raise SwError(SW.KEY_NOT_FOUND)
        if len(apdu.data) not in (0x10, 0x18, 0x20) or apdu.le is not None:
            raise SwError(SW.WRONG_LENGTH)
        factors, r8 = apdu.data[:-8], apdu.data[-8:]
        card_key = scheme.derive_key_from_data(self.alg, self.master_keys[usage], factors)
        self.session_key = scheme.derive_session_key(self.alg, card_key, r8)
        return Response()

    # --- 80 FA: encrypt / MAC -----------------------------------------------------------------
    def _encrypt(self, apdu: Apdu) -> Response:
        self._require_app()
        if apdu.p2 != 0x00 or apdu.p1 not in (0x00, 0x05):
            raise SwError(SW.WRONG_P1P2)
        if self.session_key is None:
            raise SwError(SW.CONDITIONS_NOT_SATISFIED)
        bs = scheme.block_size(self.alg)
        data = apdu.data
        if apdu.p1 == 0x00:
            if not data or len(data) % bs:
                raise SwError(SW.WRONG_LENGTH)
            return self._t0_out(scheme.ecb_encrypt(self.alg, self.session_key, data))
        if len(data) < 2 * bs or len(data) % bs:
            raise SwError(SW.WRONG_LENGTH)
        mac = scheme.cbc_mac(self.alg, self.session_key, data[bs:], iv=data[:bs])
        return self._t0_out(mac)

    # --- persistence --------------------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps(
            {
                "format": JSON_FORMAT,
                "alg": self.alg,
                "terminal_number": self.terminal_number,
                "serial": self.serial,
                "vendor": self.vendor,
                "master_keys": {u.value: k.hex().upper() for u, k in self.master_keys.items()},
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> Psam:
        state = json.loads(text)
        if state.get("format") != JSON_FORMAT:
            raise ValueError("not a cardstation PSAM state")
        return cls(
            alg=int(state["alg"]),
            terminal_number=str(state["terminal_number"]),
            serial=str(state["serial"]),
            vendor=str(state["vendor"]),
            master_keys={KeyUsage(u): bytes.fromhex(k) for u, k in state["master_keys"].items()},
        )

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Psam:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))
