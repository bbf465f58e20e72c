"""ASSUMPTIONS — the wire format of the remote encryption machine (HSM). A PROPOSAL, isolated.

Henan's 3rd-generation cards are authenticated by a remote encryption machine (加密机), not a
PSAM. Public kiosk code shows the CALL SHAPES of its key-module interface and nothing of its
wire format; this module is the one adapter between those shapes and a byte stream, so that
the real protocol (from the vendor) replaces this file and nothing else.

CONFIRMED (leithergit/SSCard_System, SSCard_System/DataCenter.cpp `WriteCard` and its HSMInfo
fields, 2025 snapshot; facts only):
- the call `cardExternalAuth(HSMInfo) -> external-authentication data`, made after the card
  gave its random numbers, whose input names: system id (strSystemID, e.g. "410700006"),
  region code (strRegionCode, the city code), card number, terminal code, ID number
  (strCardID), business type (strBusinessType: "026" for writing, "028" for reading), card
  identification code (strIdentifyNum), name, ATR (strCardATR), algorithm code (stralgoCode
  "03"), key address (strKeyAddr "0094"), issue and expiry dates, sex, nation, birth date and
  two random numbers (strRandom1, strRandom2);
- an internal-authentication call (`InnerAuth`) beside it in the same key-module interface.

PROPOSED here [P]:
- transport: TLS over TCP (the station verifies the machine against `[keys] hsm_ca` and may
  present a client certificate); one UTF-8 JSON object per line each way; one request at a
  time on a connection, answered in order, each carrying a sequence number the answer echoes;
- request field names: the HSMInfo names without their type prefix in lowerCamelCase
  (``systemId``, ``regionCode``, ``cardNum``, ``terminalCode``, ``cardId``, ``businessType``,
  ``identifyNum``, ``name``, ``cardATR``, ``algoCode``, ``keyAddr``, ``releaseDate``,
  ``validDate``, ``sex``, ``nation``, ``birthday``, ``random1``, ``random2``) plus ``op``
  ("cardExternalAuth" / "InnerAuth") and ``seq``; InnerAuth sends the 16 bytes of the internal
  authentication as ``data``;
- answer: ``{"seq", "code", "message", "exAuthData" | "result"}``; code "0" is success, any
  other is a refusal whose message is shown;
- key ids: external authentication with key 04 (UKSSSE, writing) is business type 026, with
  0A (RKSSSE, reading) 028; no other key id has a known business type;
- random1 is the card's 8-byte challenge (hex); random2 is sent empty (the station asks one
  cryptogram per challenge); the algorithm code is the card's algorithm flag as two digits
  ("03" SM4, "01" 3DES);
- the answer's exAuthData is the 16-byte data field of EXTERNAL AUTHENTICATE, in hex.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

OP_EXTERNAL_AUTH: Final[str] = "cardExternalAuth"
OP_INNER_AUTH: Final[str] = "InnerAuth"
#: EXTERNAL AUTHENTICATE key id -> business type [C 026/028, mapping P].
BUSINESS_TYPE: Final[Mapping[int, str]] = {0x04: "026", 0x0A: "028"}
DEFAULT_KEY_ADDRESS: Final[str] = "0094"  # [C] strKeyAddr of the public kiosk
SUCCESS: Final[str] = "0"
MAX_LINE: Final[int] = 64 * 1024

#: Context keys (ChipSession: card_id_code + decoded profile items) -> request fields.
_CONTEXT_FIELDS: Final[Mapping[str, str]] = {
    "card_id_code": "identifyNum", "id_number": "cardId", "card_number": "cardNum",
    "name": "name", "issue_date": "releaseDate", "expiry_date": "validDate", "sex": "sex",
    "nation": "nation", "birth_date": "birthday",
}


class WireError(ValueError):
    """An answer that does not follow the format."""


def algo_code(algorithm: int) -> str:
    return f"{algorithm:02d}"


def card_fields(atr: bytes, city6: str, algorithm: int,
                context: Mapping[str, str] | None) -> dict[str, str]:
    """The card data every request carries (empty strings for what the station does not know
    at that moment, e.g. the holder before the first write)."""
    fields = {wire: "" for wire in _CONTEXT_FIELDS.values()}
    for key, wire in _CONTEXT_FIELDS.items():
        value = (context or {}).get(key)
        if value:
            fields[wire] = str(value)
    if context and context.get("name_ext"):
        fields["name"] += str(context["name_ext"])
    fields.update(regionCode=city6, cardATR=atr.hex().upper(), algoCode=algo_code(algorithm))
    return fields


def external_auth_request(seq: int, *, system_id: str, terminal_code: str, key_address: str,
                          business_type: str, atr: bytes, city6: str, challenge: bytes,
                          algorithm: int, context: Mapping[str, str] | None) -> dict[str, Any]:
    return {"op": OP_EXTERNAL_AUTH, "seq": seq, "systemId": system_id,
            "terminalCode": terminal_code, "businessType": business_type,
            "keyAddr": key_address, **card_fields(atr, city6, algorithm, context),
            "random1": challenge.hex().upper(), "random2": ""}


def inner_auth_request(seq: int, *, system_id: str, terminal_code: str, key_address: str,
                       atr: bytes, city6: str, data: bytes, algorithm: int,
                       context: Mapping[str, str] | None) -> dict[str, Any]:
    return {"op": OP_INNER_AUTH, "seq": seq, "systemId": system_id,
            "terminalCode": terminal_code, "keyAddr": key_address,
            **card_fields(atr, city6, algorithm, context), "data": data.hex().upper()}


def encode(message: Mapping[str, Any]) -> bytes:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    try:
        message = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WireError(f"not a JSON line ({exc})") from None
    if not isinstance(message, dict):
        raise WireError("not a JSON object")
    return message


def answer_value(answer: Mapping[str, Any], seq: int, name: str, length: int) -> bytes | str:
    """The hex value `name` of a successful answer to request `seq` (its bytes), or the
    refusal text (a str) when the machine refused; WireError when the answer is malformed."""
    if answer.get("seq") != seq:
        raise WireError(f"answer to request {answer.get('seq')!r}, expected {seq}")
    code = str(answer.get("code", ""))
    if code != SUCCESS:
        return f"code {code or '?'}: {answer.get('message') or 'no reason given'}"
    try:
        value = bytes.fromhex(str(answer[name]))
    except (KeyError, ValueError):
        raise WireError(f"the answer has no hex {name!r}") from None
    if len(value) != length:
        raise WireError(f"{name} is {len(value)} bytes, expected {length}")
    return value
