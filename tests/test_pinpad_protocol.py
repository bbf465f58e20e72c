"""The PIN pad protocol and PIN block format, without a line: frames, golden bytes, PIN blocks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cardstation.drivers.pinpad import (
    TEST_PINPAD_KEK,
    FrameError,
    SessionKeys,
    decode_pin_block,
    decrypt_pin_block,
    encode_pin_block,
    encrypt_pin_block,
)
from cardstation.drivers.pinpad.pinblock import (
    key_check_value,
    unwrap_session_key,
    wrap_session_key,
)
from cardstation.drivers.pinpad.protocol import (
    Cmd,
    Frame,
    FrameDecoder,
    NakReason,
    PromptMessage,
    build_frame,
    describe,
    encode_prompt,
    lrc,
    parse_frame,
)

# --- golden frames ------------------------------------------------------------------------------

HELLO_SEQ1 = bytes.fromhex("02 0002 01 01 02 03")
PROMPT_SEQ2 = bytes.fromhex(
    "02 0012 02 03"  # STX LEN=18 SEQ=2 CMD=PROMPT
    "01 06 06 1E"  # ENTER_PIN, min 6, max 6, 30 s
    "303030303030303030303030"  # account "000000000000"
    "0C 03"  # LRC ETX
)
PROMPT_NEW_SEQ7 = bytes.fromhex(
    "02 0012 07 03 02 04 0C 3C 343030303132333435363738 2C 03"
)  # ENTER_NEW_PIN 4..12, 60 s, account 400012345678


def test_hello_frame_golden() -> None:
    assert build_frame(1, Cmd.HELLO) == HELLO_SEQ1
    assert parse_frame(HELLO_SEQ1) == Frame(1, Cmd.HELLO, b"")


def test_prompt_frame_golden() -> None:
    data = encode_prompt(PromptMessage.ENTER_PIN, 6, 6, 30, "000000000000")
    assert build_frame(2, Cmd.PROMPT, data) == PROMPT_SEQ2
    data = encode_prompt(PromptMessage.ENTER_NEW_PIN, 4, 12, 60, "400012345678")
    assert build_frame(7, Cmd.PROMPT, data) == PROMPT_NEW_SEQ7


def test_lrc_is_xor_of_len_to_data() -> None:
    raw = build_frame(9, Cmd.KEY_COUNT, b"\x03")
    assert raw[-2] == lrc(raw[1:-2]) == 0x00 ^ 0x03 ^ 0x09 ^ 0x82 ^ 0x03


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (bytes.fromhex("02 0002 01 01 00 03"), NakReason.BAD_LRC),
        (bytes.fromhex("02 0002 01 01 02 04"), NakReason.BAD_FRAME),
        (bytes.fromhex("02 0001 01 01 02 03"), NakReason.BAD_LENGTH),
        (bytes.fromhex("02 0003 01 01 02 03"), NakReason.BAD_LENGTH),
    ],
)
def test_parse_frame_errors(raw: bytes, reason: NakReason) -> None:
    with pytest.raises(FrameError) as info:
        parse_frame(raw)
    assert info.value.reason == reason


def test_decoder_noise_split_and_errors() -> None:
    dec = FrameDecoder()
    good = build_frame(3, Cmd.ACK)
    stream = b"\xff\x00" + good + bytes.fromhex("02 0002 04 01 77 03") + good
    out: list[Frame | FrameError] = []
    for b in stream:  # one byte at a time
        out.extend(dec.feed(bytes([b])))
    assert dec.noise_bytes == 2
    assert out[0] == Frame(3, Cmd.ACK)
    assert isinstance(out[1], FrameError)
    assert out[1].reason == NakReason.BAD_LRC
    assert out[1].seq == 4
    assert out[2] == Frame(3, Cmd.ACK)


def test_decoder_bad_length_resyncs_on_next_stx() -> None:
    dec = FrameDecoder()
    out = dec.feed(bytes.fromhex("02 FFFF") + build_frame(5, Cmd.HELLO))
    assert isinstance(out[0], FrameError)
    assert out[0].reason == NakReason.BAD_LENGTH
    assert out[1] == Frame(5, Cmd.HELLO)


def test_decoder_truncated() -> None:
    dec = FrameDecoder()
    assert dec.feed(build_frame(1, Cmd.HELLO)[:4]) == []
    assert dec.pending
    err = dec.reset()
    assert err is not None
    assert err.reason == NakReason.TRUNCATED


def test_describe_masks_secrets() -> None:
    key_frame = Frame(1, Cmd.LOAD_SESSION_KEY, bytes(range(20)))
    assert "0001020304" not in describe(key_frame).replace(" ", "")
    block = Frame(2, Cmd.PIN_BLOCK, bytes.fromhex("AB" * 16))
    assert "AB" not in describe(block)
    prompt = Frame(3, Cmd.PROMPT, encode_prompt(PromptMessage.ENTER_PIN, 6, 6, 30, "400012345678"))
    assert "400012345678" not in describe(prompt)
    assert "3430303031" not in describe(prompt)
    assert repr(block) == "Frame(seq=2, cmd=PIN_BLOCK, data=<16 bytes>)"


@pytest.mark.parametrize(
    ("args", "ok"),
    [
        ((6, 6, 30, "000000000000"), True),
        ((3, 6, 30, "000000000000"), False),
        ((6, 13, 30, "000000000000"), False),
        ((7, 6, 30, "000000000000"), False),
        ((6, 6, 0, "000000000000"), False),
        ((6, 6, 256, "000000000000"), False),
        ((6, 6, 30, "00000000000"), False),
        ((6, 6, 30, "00000000000A"), False),
    ],
)
def test_prompt_parameter_ranges(args: tuple[int, int, int, str], ok: bool) -> None:
    if ok:
        encode_prompt(PromptMessage.ENTER_PIN, *args)
    else:
        with pytest.raises(ValueError):
            encode_prompt(PromptMessage.ENTER_PIN, *args)


# --- PIN blocks ---------------------------------------------------------------------------------


def test_pin_block_layout_is_iso_format0_plus_random_half() -> None:
    block = encode_pin_block("1234", "400012345678", fill=bytes(8))
    # ISO 9564-1 format 0: 041234FFFFFFFFFF xor 0000400012345678
    assert block == bytes.fromhex("041274FFEDCBA987") + bytes(8)
    assert encode_pin_block("123456", "000000000000", fill=b"\x11" * 8) == bytes.fromhex(
        "06123456FFFFFFFF" + "11" * 8
    )
    a = encode_pin_block("123456", "000000000000")
    b = encode_pin_block("123456", "000000000000")
    assert a[:8] == b[:8]
    assert a[8:] != b[8:]  # fresh random half (2^-64 chance of a false failure)


digits = st.text(alphabet="0123456789", min_size=4, max_size=12)
accounts = st.text(alphabet="0123456789", min_size=12, max_size=12)


@given(pin=digits, account=accounts, key=st.binary(min_size=16, max_size=16))
def test_pin_block_round_trip(pin: str, account: str, key: bytes) -> None:
    block = encode_pin_block(pin, account)
    assert len(block) == 16
    assert decode_pin_block(block, account) == pin
    encrypted = encrypt_pin_block(block, key)
    assert len(encrypted) == 16
    assert decrypt_pin_block(encrypted, key) == block


@given(pin=st.text(min_size=0, max_size=14))
def test_encode_rejects_non_pins(pin: str) -> None:
    if 4 <= len(pin) <= 12 and pin.isascii() and pin.isdigit():
        return
    with pytest.raises(ValueError):
        encode_pin_block(pin, "000000000000")


@pytest.mark.parametrize(
    "block_hex",
    [
        "16123456FFFFFFFF",  # control nibble 1
        "03123FFFFFFFFFFF",  # length 3
        "0D123456789012FF",  # length 13
        "0612345AFFFFFFFF",  # non-digit
        "06123456FFFFFF0F",  # bad fill
    ],
)
def test_decode_rejects_malformed(block_hex: str) -> None:
    with pytest.raises(ValueError) as info:
        decode_pin_block(bytes.fromhex(block_hex) + bytes(8), "000000000000")
    assert "123456" not in str(info.value)


def test_session_keys_wrap_check_and_decrypt() -> None:
    sk = SessionKeys(TEST_PINPAD_KEK)
    with pytest.raises(ValueError):
        sk.pin_from_block(bytes(16))
    encrypted_key, kcv = sk.new_session()
    session_key = unwrap_session_key(encrypted_key, kcv, TEST_PINPAD_KEK)
    assert kcv == key_check_value(session_key)
    with pytest.raises(ValueError):
        unwrap_session_key(encrypted_key, bytes(4), TEST_PINPAD_KEK)
    block = encrypt_pin_block(encode_pin_block("246810", "123456789012"), session_key)
    assert sk.pin_from_block(block, "123456789012") == "246810"
    assert session_key.hex() not in repr(sk).lower()
    assert TEST_PINPAD_KEK.hex() not in repr(sk).lower()
    # a second session makes the first session's blocks unreadable
    sk.new_session()
    with pytest.raises(ValueError):
        sk.pin_from_block(block, "123456789012")
    sk.end_session()
    with pytest.raises(ValueError):
        sk.pin_from_block(block, "123456789012")


def test_wrap_is_sm4_ecb_under_kek() -> None:
    from cardstation.personalization.keys.scheme import Alg, ecb_encrypt

    key = bytes(range(16))
    encrypted, kcv = wrap_session_key(key, TEST_PINPAD_KEK)
    assert encrypted == ecb_encrypt(Alg.SM4, TEST_PINPAD_KEK, key)
    assert kcv == ecb_encrypt(Alg.SM4, key, bytes(16))[:4]
