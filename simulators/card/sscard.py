"""The social security card OS (SSCard).

Implements ssc-chip.md §2-4, §7, §8, §10 and the proposal of §13. Confirmed behaviour is cited
in the handlers; choices the sources leave open are marked [P]:

- a failed PIN/key attempt answers ``63Cx`` with the tries left, the attempt that exhausts the
  counter answers ``63C0``, every later attempt ``6983`` (ISO 7816-4 style) [P];
- CHANGE PIN to the initial PIN 123456 answers ``6A80`` before the old PIN is checked, so it
  costs no try [P; the terminal error "-36 不能改为初始密码" is C §7];
- PIN reload ``80 5E 00 00 Lc <new BCD>`` after EXTERNAL AUTHENTICATE with key 06 [P];
- UNBLOCK needs only a valid STK MAC over the header with the last challenge (no prior key 06);
  a wrong MAC answers ``6988`` and costs the challenge [P];
- a challenge is consumed by the next EXTERNAL AUTHENTICATE / UNBLOCK, whatever the outcome;
  an attempt without an 8-byte challenge answers ``6984`` [P];
- security state (authenticated keys, PIN verified) is cleared by power off/reset and by selecting
  the SSSE or any DF outside it (selecting DF01 below the SSSE keeps it) [P; C §13 for SSSE];
- DF01 access is simplified to "PIN or RK(0A)" for reading and UK(04) for writing [P].
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

from cardstation.personalization.keys import scheme
from cardstation.personalization.keys.scheme import EXT_AUTH_KEY_IDS, KeyUsage

from .apdu import Apdu, Response
from .atr import build_atr, historical_bytes
from .bank import build_bank, gpo_response
from .base import CardOS, Command, cmd
from .files import DF, EF, RecordEF, SecurityState, TransparentEF
from .layout import KID_PUK, CardTree, build_tree, fci
from .sw import SW, SwError, sw_tries_left, sw_wrong_le
from .tlv import TlvError, bcd_to_digits, find_ber, parse_simple_tlv

JSON_FORMAT = "cardstation.sscard/1"
INITIAL_PIN = "123456"  # [C §7]
PIN_MAX_TRIES = 6  # [C §7]
KEY_MAX_TRIES = 3  # [C §7/§8: 剩余可尝试次数2、1、0次]
CHALLENGE_LENGTHS = (4, 8, 16)


@dataclass(frozen=True)
class CardConfig:
    """Structure of a card (what is fixed at manufacture). JSON-serialisable."""

    generation: int = 3
    alg: int = scheme.Alg.SM4
    vendor: str = "CS"
    chip: str = "3001"  # 2 bytes hex, ATR middle field [P]
    region: str = "410700"  # 6 digits; ATR region, 卡识别码 prefix, key diversification city
    serial: str = "30000001"  # 4 bytes hex: the chip serial, ATR tail (not the 卡流水号)
    pan: str | None = None  # bank application present when set
    pan_expiry: str = "301231"  # YYMMDD
    pan_effective: str = "201231"
    with_ef0d: bool = True


@dataclass
class KeySlot:
    """A card key with its try counter."""

    key: bytes
    tries: int = KEY_MAX_TRIES
    max_tries: int = KEY_MAX_TRIES


def decode_pin(data: bytes) -> str:
    """Packed BCD PIN, F-padded when odd; 4-16 digits [C §7]. 6700 bad length, 6A80 bad digits."""
    if not 2 <= len(data) <= 8:
        raise SwError(SW.WRONG_LENGTH)
    hexs = data.hex().upper()
    if hexs.endswith("F"):
        hexs = hexs[:-1]
    if not hexs.isdigit() or not 4 <= len(hexs) <= 16:
        raise SwError(SW.WRONG_DATA)
    return hexs


class SSCard(CardOS):
    """Simulated 社会保障卡 (2nd or 3rd generation). Build with :func:`make_card`."""

    COMMANDS: ClassVar[Mapping[int, Command]] = {
        0xA4: cmd("_select"),
        0xB2: cmd("_read_record"),
        0xDC: cmd("_update_record"),
        0xB0: cmd("_read_binary"),
        0xD6: cmd("_update_binary"),
        0x84: cmd("_get_challenge"),
        0x82: cmd("_external_authenticate"),
        0x88: cmd("_internal_authenticate"),
        0x20: cmd("_verify"),
        0x5E: cmd("_change_pin", 0x80),
        0x24: cmd("_unblock_pin", 0x84),
        0xA8: cmd("_get_processing_options", 0x80),
    }

    def __init__(
        self,
        config: CardConfig,
        keys: Mapping[KeyUsage, KeySlot],
        pin: str = INITIAL_PIN,
        pin_tries: int = PIN_MAX_TRIES,
    ) -> None:
        super().__init__(
            build_atr(
                config.vendor,
                bytes.fromhex(config.chip),
                config.region,
                bytes.fromhex(config.serial),
            )
        )
        self.config = config
        self.keys: dict[KeyUsage, KeySlot] = dict(keys)
        self.pin = pin
        self.pin_tries = pin_tries
        bank = (
            build_bank(config.pan, config.pan_expiry, config.pan_effective) if config.pan else None
        )
        self.tree: CardTree = build_tree(config.generation, config.alg, config.with_ef0d, bank)
        self.security = SecurityState()
        self.current_df: DF = self.tree.mf
        self.current_ef: EF | None = None
        self.challenge: bytes | None = None
        # Where GET CHALLENGE draws its bytes; tests swap in a deterministic source so a whole
        # personalization transcript is byte-exact. Not part of the persisted chip state.
        self.challenge_source: Callable[[int], bytes] = secrets.token_bytes

    # --- facts for tests and the station's expectations --------------------------------------
    @property
    def alg(self) -> int:
        return self.config.alg

    @property
    def generation(self) -> int:
        return self.config.generation

    @property
    def historical_bytes(self) -> bytes:
        return historical_bytes(self.atr)

    @property
    def card_identification_code(self) -> bytes:
        """卡识别码 (EF05 tag 01, 16 bytes)."""
        return self.tree.ef05.value_of(0x01)

    @property
    def city(self) -> str:
        """city6 used for key diversification (first 6 hex digits of the 卡识别码)."""
        return scheme.city_of(self.card_identification_code)

    @property
    def pan(self) -> str | None:
        """PAN of the bank application (digits), None without one."""
        adf = self.tree.bank_adf
        if adf is None:
            return None
        for node in adf.children:
            if isinstance(node, RecordEF):
                for record in node.records:
                    value = find_ber(record, 0x5A)
                    if value is not None:
                        return bcd_to_digits(value)
        return None

    def item(self, ef: str, tag: int) -> bytes:
        """Value of an SSSE record item, e.g. ``card.item("EF06", 0x08)``."""
        node = self.tree.ssse.child_by_fid(int(ef[2:], 16) | 0xEF00)
        if not isinstance(node, RecordEF):
            raise KeyError(ef)
        return node.value_of(tag)

    def file(self, fid: int) -> TransparentEF:
        """A transparent EF of the SSSE by FID (e.g. the certificate step's files)."""
        node = self.tree.ssse.child_by_fid(fid)
        if not isinstance(node, TransparentEF):
            raise KeyError(f"{fid:04X}")
        return node

    def info(self) -> dict[str, object]:
        """Summary for test expectations and the 回盘 record."""
        return {
            "atr": self.atr.hex().upper(),
            "historical_bytes": self.historical_bytes.hex().upper(),
            "card_identification_code": self.card_identification_code.hex().upper(),
            "city": self.city,
            "generation": self.generation,
            "alg": self.alg,
            "pan": self.pan,
        }

    # --- volatile state ----------------------------------------------------------------------
    def _reset_volatile(self) -> None:
        super()._reset_volatile()
        self.security = SecurityState()
        self.current_df = self.tree.mf
        self.current_ef = None
        self.challenge = None

    def _enter_df(self, df: DF) -> None:
        if df is self.tree.ssse or not df.is_within(self.tree.ssse):
            self.security.clear()
        self.current_df = df
        self.current_ef = None

    # --- SELECT [C2 §4, §13] -----------------------------------------------------------------
    def _find_by_fid(self, fid: int, ef_only: bool) -> EF | DF | None:
        cur = self.current_df
        if not ef_only:
            if fid == 0x3F00:
                return self.tree.mf
            if cur.fid == fid:
                return cur
        child = cur.child_by_fid(fid)
        if isinstance(child, EF) or (isinstance(child, DF) and not ef_only):
            return child
        if not ef_only and cur.parent is not None:
            sibling = cur.parent.child_by_fid(fid)
            if isinstance(sibling, DF):
                return sibling
        return None

    def _find_by_name(self, name: bytes) -> DF | None:
        for node in self.tree.mf.walk():
            if isinstance(node, DF) and node.name == name:
                return node
        return None

    def _select(self, apdu: Apdu) -> Response:
        if apdu.p2 not in (0x00, 0x0C):
            raise SwError(SW.WRONG_P1P2)
        node: EF | DF | None
        if apdu.p1 == 0x00 and not apdu.data:
            node = self.tree.mf  # ISO 7816-4: P1=00 without data selects the MF
        elif apdu.p1 in (0x00, 0x01, 0x02):
            if len(apdu.data) != 2:
                raise SwError(SW.WRONG_LENGTH)
            fid = int.from_bytes(apdu.data, "big")
            if apdu.p1 == 0x01:
                # a DF under the current DF, by FID: field readers select DF03 this way
                # (`00 A4 01 00 02 DF 03`, a7082633/HDOS_VC6 ICCInter2/ICCInter.cpp)
                child = self.current_df.child_by_fid(fid)
                node = child if isinstance(child, DF) else None
            else:
                node = self._find_by_fid(fid, ef_only=apdu.p1 == 0x02)
        elif apdu.p1 == 0x04:
            if not 1 <= len(apdu.data) <= 16:
                raise SwError(SW.WRONG_LENGTH)
            node = self._find_by_name(apdu.data)
        else:
            raise SwError(SW.WRONG_P1P2)
        if node is None:
            raise SwError(SW.FILE_NOT_FOUND)
        if isinstance(node, EF):
            self.current_ef = node  # EF select: 9000, no FCI [C S6 §4]
            return Response()
        self._enter_df(node)
        return Response() if apdu.p2 == 0x0C else self._t0_out(fci(node))

    # --- records [C2 §4] ----------------------------------------------------------------------
    def _ef_by_reference(self, sfi: int) -> EF:
        """Current EF (SFI 0) or the EF with ``sfi`` in the current DF, which becomes current."""
        if sfi == 0:
            if self.current_ef is None:
                raise SwError(SW.NO_CURRENT_EF)
            return self.current_ef
        if sfi == 0x1F:
            raise SwError(SW.WRONG_P1P2)
        ef = self.current_df.ef_by_sfi(sfi)
        if ef is None:
            raise SwError(SW.FILE_NOT_FOUND)
        self.current_ef = ef
        return ef

    def _record_target(self, apdu: Apdu) -> tuple[RecordEF, int]:
        mode = apdu.p2 & 0x07
        if mode not in (0x04, 0x00):
            raise SwError(SW.WRONG_P1P2)
        ef = self._ef_by_reference(apdu.p2 >> 3)
        if not isinstance(ef, RecordEF):
            raise SwError(SW.FILE_STRUCTURE)
        index = ef.index_by_number(apdu.p1) if mode == 0x04 else ef.index_by_tag(apdu.p1)
        return ef, index

    def _read_record(self, apdu: Apdu) -> Response:
        apdu.require_le()
        ef, index = self._record_target(apdu)
        if not ef.read_rule(index).allows(self.security):
            raise SwError(SW.SECURITY_NOT_SATISFIED)
        return self._exact_le(apdu, ef.records[index])

    def _update_record(self, apdu: Apdu) -> Response:
        if not apdu.data:
            raise SwError(SW.WRONG_LENGTH)
        ef, index = self._record_target(apdu)
        if not ef.write.allows(self.security):
            raise SwError(SW.SECURITY_NOT_SATISFIED)
        record = ef.validated_record(index, apdu.data)  # all checks before any change
        ef.records[index] = record
        return Response()

    # --- binary [C §5.3] --------------------------------------------------------------------
    def _binary_target(self, apdu: Apdu) -> tuple[TransparentEF, int]:
        if apdu.p1 & 0x80:
            if apdu.p1 & 0x60:
                raise SwError(SW.WRONG_P1P2)
            ef = self._ef_by_reference(apdu.p1 & 0x1F)
            offset = apdu.p2
        else:
            ef = self._ef_by_reference(0)
            offset = (apdu.p1 << 8) | apdu.p2
        if not isinstance(ef, TransparentEF):
            raise SwError(SW.FILE_STRUCTURE)
        if offset >= ef.size:
            raise SwError(SW.WRONG_OFFSET)
        return ef, offset

    def _read_binary(self, apdu: Apdu) -> Response:
        le = apdu.require_le()
        ef, offset = self._binary_target(apdu)
        if not ef.read.allows(self.security):
            raise SwError(SW.SECURITY_NOT_SATISFIED)
        available = ef.size - offset
        if le == 0:
            n = min(256, available)
        elif le > available:
            raise SwError(sw_wrong_le(available))
        else:
            n = le
        return Response(bytes(ef.data[offset : offset + n]))

    def _update_binary(self, apdu: Apdu) -> Response:
        if not apdu.data or apdu.le is not None:
            raise SwError(SW.WRONG_LENGTH)
        ef, offset = self._binary_target(apdu)
        if not ef.write.allows(self.security):
            raise SwError(SW.SECURITY_NOT_SATISFIED)
        if offset + len(apdu.data) > ef.size:
            raise SwError(SW.WRONG_LENGTH)
        ef.data[offset : offset + len(apdu.data)] = apdu.data
        return Response()

    # --- authentication [C2 §8] ----------------------------------------------------------------
    def _get_challenge(self, apdu: Apdu) -> Response:
        if apdu.p1 or apdu.p2:
            raise SwError(SW.WRONG_P1P2)
        le = apdu.require_le()
        if le not in CHALLENGE_LENGTHS:
            raise SwError(SW.WRONG_LENGTH)
        self.challenge = self.challenge_source(le)
        return Response(self.challenge)

    def _take_challenge(self) -> bytes:
        challenge, self.challenge = self.challenge, None
        if challenge is None or len(challenge) < 8:
            raise SwError(SW.REF_DATA_INVALID)
        return challenge

    def _external_authenticate(self, apdu: Apdu) -> Response:
        if apdu.p1 != 0x00:
            raise SwError(SW.WRONG_P1P2)
        usage = EXT_AUTH_KEY_IDS.get(apdu.p2)
        slot = self.keys.get(usage) if usage is not None else None
        if slot is None:
            raise SwError(SW.KEY_NOT_FOUND)
        if len(apdu.data) != 16:
            raise SwError(SW.WRONG_LENGTH)
        if slot.tries == 0:
            raise SwError(SW.AUTH_BLOCKED)
        challenge = self._take_challenge()
        if not scheme.check_external_auth(self.alg, slot.key, challenge, apdu.data):
            slot.tries -= 1
            raise SwError(sw_tries_left(slot.tries))
        slot.tries = slot.max_tries
        self.security.keys.add(apdu.p2)
        return Response()

    def _internal_authenticate(self, apdu: Apdu) -> Response:
        if apdu.p1 or apdu.p2:
            raise SwError(SW.WRONG_P1P2)
        if len(apdu.data) != 16:
            raise SwError(SW.WRONG_LENGTH)
        slot = self.keys.get(KeyUsage.INT)
        if slot is None:
            raise SwError(SW.KEY_NOT_FOUND)
        return self._t0_out(scheme.internal_auth(self.alg, slot.key, apdu.data))

    # --- PIN [C2 §7] -------------------------------------------------------------------------
    def _check_pin(self, candidate: str) -> None:
        """Compare with the PIN, counting down; raises 6983 when blocked, 63Cx when wrong."""
        if self.pin_tries == 0:
            raise SwError(SW.AUTH_BLOCKED)
        if not hmac.compare_digest(candidate.encode(), self.pin.encode()):
            self.pin_tries -= 1
            self.security.pin_verified = False
            raise SwError(sw_tries_left(self.pin_tries))
        self.pin_tries = PIN_MAX_TRIES

    def _verify(self, apdu: Apdu) -> Response:
        if apdu.p1 or apdu.p2:
            raise SwError(SW.WRONG_P1P2)
        if not apdu.data:  # status query (ISO 7816-4): tries left or verified
            if self.pin_tries == 0:
                raise SwError(SW.AUTH_BLOCKED)
            if self.security.pin_verified:
                return Response()
            raise SwError(sw_tries_left(self.pin_tries))
        if self.pin_tries == 0:
            raise SwError(SW.AUTH_BLOCKED)
        self._check_pin(decode_pin(apdu.data))
        self.security.pin_verified = True
        return Response()

    def _change_pin(self, apdu: Apdu) -> Response:
        if apdu.p2 != 0x00 or apdu.p1 not in (0x00, 0x01):
            raise SwError(SW.WRONG_P1P2)
        if not apdu.data:
            raise SwError(SW.WRONG_LENGTH)
        if apdu.p1 == 0x00:  # PIN reload [P]: 80 5E 00 00 Lc <new BCD>, after ext-auth key 06
            if KID_PUK not in self.security.keys:
                raise SwError(SW.SECURITY_NOT_SATISFIED)
            self.pin = decode_pin(apdu.data)
            self.pin_tries = PIN_MAX_TRIES
            return Response()
        sep = apdu.data.find(b"\xff")  # CHANGE PIN: 80 5E 01 00 Lc <old> FF <new> [C2 §7]
        if sep < 0:
            raise SwError(SW.WRONG_DATA)
        old, new = decode_pin(apdu.data[:sep]), decode_pin(apdu.data[sep + 1 :])
        if new == INITIAL_PIN:
            raise SwError(SW.WRONG_DATA)
        self._check_pin(old)
        self.pin = new
        self.security.pin_verified = True
        return Response()

    def _unblock_pin(self, apdu: Apdu) -> Response:
        if apdu.p1 or apdu.p2:
            raise SwError(SW.WRONG_P1P2)
        if len(apdu.data) != 4 or apdu.le is not None:
            raise SwError(SW.WRONG_LENGTH)
        slot = self.keys.get(KeyUsage.STK)
        if slot is None:
            raise SwError(SW.KEY_NOT_FOUND)
        challenge = self._take_challenge()
        expected = scheme.unblock_mac(self.alg, slot.key, challenge, apdu.raw[:5])
        if not hmac.compare_digest(expected, apdu.data):
            raise SwError(SW.SM_DATA_INCORRECT)
        self.pin_tries = PIN_MAX_TRIES  # counter reset, PIN unchanged [C2 §7]
        return Response()

    # --- bank application [C §10] -------------------------------------------------------------
    def _get_processing_options(self, apdu: Apdu) -> Response:
        if apdu.p1 or apdu.p2:
            raise SwError(SW.WRONG_P1P2)
        adf = self.tree.bank_adf
        if adf is None or self.current_df is not adf:
            raise SwError(SW.CONDITIONS_NOT_SATISFIED)
        data = apdu.data
        if len(data) < 2 or data[0] != 0x83 or data[1] != len(data) - 2:
            raise SwError(SW.WRONG_DATA)
        return self._t0_out(gpo_response())

    # --- persistence -------------------------------------------------------------------------
    def _efs(self) -> list[EF]:
        return [n for n in self.tree.mf.walk() if isinstance(n, EF)]

    def to_json(self) -> str:
        """Persistent state (files, PIN, keys, counters); volatile state is not kept."""
        state = {
            "format": JSON_FORMAT,
            "config": asdict(self.config),
            "pin": {"digits": self.pin, "tries": self.pin_tries},
            "keys": {
                usage.value: {"key": s.key.hex().upper(), "tries": s.tries, "max": s.max_tries}
                for usage, s in self.keys.items()
            },
            "files": {ef.path: ef.dump() for ef in self._efs()},
        }
        return json.dumps(state, ensure_ascii=False, indent=1)

    @classmethod
    def from_json(cls, text: str) -> SSCard:
        """Rebuild a card from :meth:`to_json` output (raises ValueError when inconsistent)."""
        state = json.loads(text)
        if state.get("format") != JSON_FORMAT:
            raise ValueError("not a cardstation SSCard state")
        keys = {
            KeyUsage(name): KeySlot(bytes.fromhex(k["key"]), int(k["tries"]), int(k["max"]))
            for name, k in state["keys"].items()
        }
        card = cls(
            CardConfig(**state["config"]),
            keys,
            pin=str(state["pin"]["digits"]),
            pin_tries=int(state["pin"]["tries"]),
        )
        efs = {ef.path: ef for ef in card._efs()}
        for path, content in state["files"].items():
            if path not in efs:
                raise ValueError(f"unknown file {path}")
            efs[path].load(content)
        return card

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> SSCard:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


def record_value(record: bytes) -> bytes:
    """Value part of a SIMPLE-TLV record as returned by READ RECORD (without SW)."""
    try:
        return parse_simple_tlv(record)[1]
    except TlvError as exc:
        raise ValueError(str(exc)) from exc
