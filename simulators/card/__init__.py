"""Software social security card (社会保障卡) and PSAM, transport-independent.

A reader link (vpcd, in-process) drives any :class:`SmartCard`: ``power_on()`` -> ATR,
``process_apdu(bytes) -> bytes`` (never raises), ``power_off()``, ``reset()``.
Concrete cards: :class:`SSCard` (build with :func:`make_card`) and :class:`Psam`.
"""

from .apdu import Apdu, Response
from .atr import AtrInfo, build_atr, historical_bytes, parse_atr
from .base import CardOS, SmartCard
from .profiles import PROFILES, SAMPLE_HOLDER, Holder, card_number_check_char, make_card
from .psam import PSAM_AID, Psam
from .sscard import INITIAL_PIN, CardConfig, KeySlot, SSCard, decode_pin, record_value
from .sw import SW, SW_MEANINGS, SwError, describe

__all__ = [
    "INITIAL_PIN",
    "PROFILES",
    "PSAM_AID",
    "SAMPLE_HOLDER",
    "SW",
    "SW_MEANINGS",
    "Apdu",
    "AtrInfo",
    "CardConfig",
    "CardOS",
    "Holder",
    "KeySlot",
    "Psam",
    "Response",
    "SSCard",
    "SmartCard",
    "SwError",
    "build_atr",
    "card_number_check_char",
    "decode_pin",
    "describe",
    "historical_bytes",
    "make_card",
    "parse_atr",
    "record_value",
]
