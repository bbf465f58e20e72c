"""The PIN pad driver against the simulated pad over a real pty (no mocks)."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import serial

from cardstation.drivers.pinpad import (
    TEST_PINPAD_KEK,
    FrameError,
    NakReason,
    PinPad,
    PinPadCancelled,
    PinPadError,
    PinPadInfo,
    PinPadNotResponding,
    PinPadRejected,
    PinPadTimeout,
    SessionKeys,
)
from cardstation.drivers.pinpad.protocol import (
    Cmd,
    ErrorCode,
    FrameDecoder,
    PromptMessage,
    build_frame,
    encode_prompt,
)
from cardstation.personalization.keys.scheme import Alg, ecb_decrypt
from cardstation.simulators.pinpad import PinPadSimulator

ACCOUNT = "400012345678"


@pytest.fixture
def sim() -> Iterator[PinPadSimulator]:
    simulator = PinPadSimulator()
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def pad(sim: PinPadSimulator) -> Iterator[PinPad]:
    assert sim.path is not None
    with PinPad(sim.path, timeout=1.0) as p:
        yield p


@pytest.fixture
def keys(pad: PinPad) -> SessionKeys:
    """A session key loaded into the pad."""
    sk = SessionKeys(TEST_PINPAD_KEK)
    pad.load_session_key(*sk.new_session())
    return sk


def in_thread(fn: Callable[[], object]) -> tuple[threading.Thread, dict[str, object]]:
    result: dict[str, object] = {}

    def body() -> None:
        try:
            result["value"] = fn()
        except BaseException as exc:
            result["error"] = exc

    t = threading.Thread(target=body, daemon=True)
    t.start()
    return t, result


def test_hello(pad: PinPad) -> None:
    assert pad.hello() == PinPadInfo(model="CSPP-SIM", serial="SIM00000001", firmware="1.0.0")


def test_session_key_load(pad: PinPad, sim: PinPadSimulator) -> None:
    assert not sim.has_session_key
    sk = SessionKeys(TEST_PINPAD_KEK)
    pad.load_session_key(*sk.new_session())
    assert sim.has_session_key


def test_wrong_check_value_rejected(pad: PinPad, sim: PinPadSimulator) -> None:
    encrypted, kcv = SessionKeys(TEST_PINPAD_KEK).new_session()
    with pytest.raises(PinPadRejected) as info:
        pad.load_session_key(encrypted, bytes(b ^ 1 for b in kcv))
    assert info.value.code == NakReason.KEY_CHECK_FAILED
    assert not sim.has_session_key
    # and no PIN entry without a good session key
    with pytest.raises(PinPadRejected) as info:
        pad.read_pin_block("ENTER_PIN")
    assert info.value.code == NakReason.NO_SESSION_KEY


def test_wrong_kek_in_pad_rejected(pad: PinPad, sim: PinPadSimulator) -> None:
    sim.inject("wrong_check_value")
    sk = SessionKeys(TEST_PINPAD_KEK)
    with pytest.raises(PinPadRejected) as info:
        pad.load_session_key(*sk.new_session())
    assert info.value.code == NakReason.KEY_CHECK_FAILED
    pad.load_session_key(*sk.new_session())  # one-shot fault
    assert sim.has_session_key


def test_typed_pin_comes_back_encrypted(
    pad: PinPad, sim: PinPadSimulator, keys: SessionKeys
) -> None:
    progress: list[int] = []
    t, result = in_thread(
        lambda: pad.read_pin_block("ENTER_PIN", account=ACCOUNT, on_progress=progress.append)
    )
    assert sim.wait_for_prompt()
    prompt = sim.prompt
    assert prompt is not None
    assert prompt.message == PromptMessage.ENTER_PIN
    assert (prompt.min_len, prompt.max_len, prompt.timeout_s) == (6, 6, 30)
    sim.type_digits("908172")
    sim.press_enter()
    t.join(5)
    assert "error" not in result
    block = result["value"]
    assert isinstance(block, bytes)
    assert len(block) == 16
    assert b"908172" not in block
    assert "908172" not in block.hex()
    assert keys.pin_from_block(block, ACCOUNT) == "908172"
    assert progress == [1, 2, 3, 4, 5, 6]
    assert all(type(n) is int for n in progress)
    assert sim.prompt is None


def test_same_pin_gives_different_blocks(
    pad: PinPad, sim: PinPadSimulator, keys: SessionKeys
) -> None:
    sim.script(["111111", "enter", "111111", "enter"])
    a = pad.read_pin_block("ENTER_PIN")
    b = pad.read_pin_block("ENTER_PIN")
    assert a != b
    assert keys.pin_from_block(a) == keys.pin_from_block(b) == "111111"


def test_progress_is_counts_never_digits(
    pad: PinPad, sim: PinPadSimulator, keys: SessionKeys
) -> None:
    progress: list[int] = []
    sim.script(["987654", "ENTER"])
    block = pad.read_pin_block("ENTER_PIN", on_progress=progress.append)
    assert progress == [1, 2, 3, 4, 5, 6]
    assert keys.pin_from_block(block) == "987654"
    assert not {7, 8, 9} & set(progress)


def test_change_pin_flow_scripted(pad: PinPad, sim: PinPadSimulator, keys: SessionKeys) -> None:
    sim.script(["123456", "enter", "654321", "enter", "654321", "enter"])
    old = pad.read_pin_block("ENTER_OLD_PIN", account=ACCOUNT)
    new = pad.read_pin_block("ENTER_NEW_PIN", account=ACCOUNT)
    confirm = pad.read_pin_block(PromptMessage.CONFIRM_NEW_PIN, account=ACCOUNT)
    assert keys.pin_from_block(old, ACCOUNT) == "123456"
    assert keys.pin_from_block(new, ACCOUNT) == keys.pin_from_block(confirm, ACCOUNT) == "654321"


def test_variable_length_and_extra_digits_ignored(
    pad: PinPad, sim: PinPadSimulator, keys: SessionKeys
) -> None:
    progress: list[int] = []
    sim.script(["12345678", "enter"])
    block = pad.read_pin_block("ENTER_PIN", 4, 6, on_progress=progress.append)
    assert keys.pin_from_block(block) == "123456"
    assert progress == [1, 2, 3, 4, 5, 6]
    sim.script(["2468", "enter"])
    assert keys.pin_from_block(pad.read_pin_block("ENTER_PIN", 4, 12)) == "2468"


def test_clear_restarts_entry(pad: PinPad, sim: PinPadSimulator, keys: SessionKeys) -> None:
    progress: list[int] = []
    sim.script(["99", "clear", "135790", "enter"])
    block = pad.read_pin_block("ENTER_PIN", on_progress=progress.append)
    assert keys.pin_from_block(block) == "135790"
    assert progress == [1, 2, 0, 1, 2, 3, 4, 5, 6]


def test_too_short_pin_is_refused_on_the_pad(
    pad: PinPad, sim: PinPadSimulator, keys: SessionKeys
) -> None:
    progress: list[int] = []
    sim.script(["123", "enter", "246813", "enter"])
    block = pad.read_pin_block("ENTER_PIN", on_progress=progress.append)
    assert keys.pin_from_block(block) == "246813"
    assert progress == [1, 2, 3, 0, 1, 2, 3, 4, 5, 6]
    assert sim.short_entries == 1


def test_too_short_pin_then_nothing_times_out(
    pad: PinPad, sim: PinPadSimulator, keys: SessionKeys
) -> None:
    sim.script(["12345", "enter"])
    with pytest.raises(PinPadTimeout):
        pad.read_pin_block("ENTER_PIN", timeout_s=1)
    assert sim.short_entries == 1


def test_holder_cancels(pad: PinPad, sim: PinPadSimulator, keys: SessionKeys) -> None:
    sim.script(["12", "cancel"])
    with pytest.raises(PinPadCancelled) as info:
        pad.read_pin_block("ENTER_PIN")
    assert info.value.by_holder
    # the pad is idle again and the scripted keys were consumed
    sim.script(["654987", "enter"])
    assert keys.pin_from_block(pad.read_pin_block("ENTER_PIN")) == "654987"


def test_holder_cancels_live(pad: PinPad, sim: PinPadSimulator, keys: SessionKeys) -> None:
    t, result = in_thread(lambda: pad.read_pin_block("ENTER_PIN"))
    assert sim.wait_for_prompt()
    sim.type_digits("1")
    sim.press_cancel()
    t.join(5)
    assert isinstance(result.get("error"), PinPadCancelled)


def test_host_cancels_from_another_thread(
    pad: PinPad, sim: PinPadSimulator, keys: SessionKeys
) -> None:
    t, result = in_thread(lambda: pad.read_pin_block("ENTER_PIN"))
    assert sim.wait_for_prompt()
    started = time.monotonic()
    pad.cancel()
    t.join(5)
    assert time.monotonic() - started < 2
    error = result.get("error")
    assert isinstance(error, PinPadCancelled)
    assert not error.by_holder
    assert sim.wait_idle()
    # the CANCEL's ACK was consumed: the next command works at once
    assert pad.hello().model == "CSPP-SIM"


def test_host_cancels_from_progress_callback(
    pad: PinPad, sim: PinPadSimulator, keys: SessionKeys
) -> None:
    def on_progress(count: int) -> None:
        if count == 3:
            pad.cancel()

    sim.script(["123"])
    with pytest.raises(PinPadCancelled) as info:
        pad.read_pin_block("ENTER_PIN", on_progress=on_progress)
    assert not info.value.by_holder
    pad.cancel()  # idle: plain ACK


def test_timeout(pad: PinPad, sim: PinPadSimulator, keys: SessionKeys) -> None:
    started = time.monotonic()
    with pytest.raises(PinPadTimeout):
        pad.read_pin_block("ENTER_PIN", timeout_s=1)
    assert 0.9 <= time.monotonic() - started < 3.0
    assert sim.prompt is None


def test_keys_while_idle_are_ignored(pad: PinPad, sim: PinPadSimulator, keys: SessionKeys) -> None:
    sim.type_digits("111111")
    sim.press_enter()
    time.sleep(0.2)
    with pytest.raises(PinPadTimeout):
        pad.read_pin_block("ENTER_PIN", timeout_s=1)


def test_keypad_fault_is_pinpad_error(pad: PinPad, sim: PinPadSimulator, keys: SessionKeys) -> None:
    sim.inject("keypad_fault")
    with pytest.raises(PinPadError) as info:
        pad.read_pin_block("ENTER_PIN")
    assert info.value.code == ErrorCode.KEYPAD_FAULT


def test_corrupt_frame_detected(pad: PinPad, sim: PinPadSimulator) -> None:
    sim.inject("corrupt_frame")
    with pytest.raises(FrameError):
        pad.hello()
    assert pad.hello().model == "CSPP-SIM"


def test_corrupt_frame_during_entry_cancels_prompt(
    pad: PinPad, sim: PinPadSimulator, keys: SessionKeys
) -> None:
    t, result = in_thread(lambda: pad.read_pin_block("ENTER_PIN"))
    assert sim.wait_for_prompt()
    sim.inject("corrupt_frame")
    sim.type_digits("1")
    t.join(5)
    assert isinstance(result.get("error"), FrameError)
    assert sim.wait_idle(2)  # the driver cancelled the pad's prompt
    sim.script(["112233", "enter"])
    assert keys.pin_from_block(pad.read_pin_block("ENTER_PIN")) == "112233"


def test_no_reply_is_not_responding(pad: PinPad, sim: PinPadSimulator) -> None:
    sim.inject("no_reply")
    started = time.monotonic()
    with pytest.raises(PinPadNotResponding):
        pad.hello()
    assert time.monotonic() - started < 2
    assert pad.hello().model == "CSPP-SIM"


def test_missing_port_is_not_responding(sim: PinPadSimulator) -> None:
    assert sim.path is not None
    sim.stop()  # the pty is gone: the port cannot be opened
    with pytest.raises(PinPadNotResponding):
        PinPad(sim.path, timeout=0.3).hello()


def test_prompt_parameters_checked_before_sending(pad: PinPad, sim: PinPadSimulator) -> None:
    with pytest.raises(ValueError):
        pad.read_pin_block("ENTER_PIN", min_len=3)
    with pytest.raises(ValueError):
        pad.read_pin_block("SHOW_PIN")
    with pytest.raises(ValueError):
        pad.read_pin_block("ENTER_PIN", account="12345")
    assert sim.commands == []


# --- malformed frames at the pad (raw serial, no driver) -----------------------------------------


def _raw_exchange(path: str, raw: bytes, wait: float = 1.0) -> list[object]:
    with serial.serial_for_url(path, timeout=0.05) as port:
        port.write(raw)
        dec = FrameDecoder()
        out: list[object] = []
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and not out:
            out.extend(dec.feed(port.read(256)))
        return out


@pytest.mark.parametrize(
    ("raw", "seq", "reason"),
    [
        (bytes.fromhex("02 0002 05 01 00 03"), 5, NakReason.BAD_LRC),
        (bytes.fromhex("02 0002 06 01 05 04"), 6, NakReason.BAD_FRAME),
        (bytes.fromhex("02 0001 07 01 06 03"), 0, NakReason.BAD_LENGTH),
        (build_frame(8, 0x33), 8, NakReason.UNKNOWN_COMMAND),
        (build_frame(9, Cmd.LOAD_SESSION_KEY, bytes(5)), 9, NakReason.BAD_DATA),
        (build_frame(10, Cmd.PROMPT, b"\x01\x06"), 10, NakReason.BAD_DATA),
    ],
)
def test_pad_naks_malformed_frames(
    sim: PinPadSimulator, raw: bytes, seq: int, reason: NakReason
) -> None:
    assert sim.path is not None
    out = _raw_exchange(sim.path, raw)
    assert len(out) == 1
    frame = out[0]
    assert (frame.seq, frame.cmd, frame.data) == (seq, Cmd.NAK, bytes([reason]))  # type: ignore[attr-defined]


def test_pad_naks_truncated_frame(sim: PinPadSimulator) -> None:
    assert sim.path is not None
    out = _raw_exchange(sim.path, build_frame(3, Cmd.HELLO)[:4], wait=2.5)
    assert [(f.cmd, f.data) for f in out] == [(Cmd.NAK, bytes([NakReason.TRUNCATED]))]  # type: ignore[attr-defined]


def test_pad_rejects_prompt_out_of_range(sim: PinPadSimulator) -> None:
    assert sim.path is not None
    bad = bytearray(encode_prompt(PromptMessage.ENTER_PIN, 6, 6, 30, "000000000000"))
    bad[1] = 2  # min_len 2
    out = _raw_exchange(sim.path, build_frame(4, Cmd.PROMPT, bytes(bad)))
    assert [(f.seq, f.data) for f in out] == [(4, bytes([NakReason.BAD_DATA]))]  # type: ignore[attr-defined]


# --- nothing secret in logs ----------------------------------------------------------------------


def test_no_pin_or_key_in_logs(
    pad: PinPad, sim: PinPadSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    trace: list[str] = []
    assert sim.path is not None
    pad.close()
    sk = SessionKeys(TEST_PINPAD_KEK)
    pins = ["739251", "480613", "480613"]
    with PinPad(sim.path, timeout=1.0, trace=trace.append) as traced:
        traced.hello()
        encrypted_key, kcv = sk.new_session()
        traced.load_session_key(encrypted_key, kcv)
        session_key = ecb_decrypt(Alg.SM4, TEST_PINPAD_KEK, encrypted_key)
        sim.script([pins[0], "enter", "12", "clear", pins[1], "enter"])
        blocks = [
            traced.read_pin_block("ENTER_OLD_PIN", account=ACCOUNT),
            traced.read_pin_block("ENTER_NEW_PIN", account=ACCOUNT),
        ]
        t, _ = in_thread(lambda: traced.read_pin_block("CONFIRM_NEW_PIN", account=ACCOUNT))
        assert sim.wait_for_prompt()
        sim.type_digits(pins[2])
        sim.press_enter()
        t.join(5)
        sim.script(["1"])
        with pytest.raises(PinPadTimeout):
            traced.read_pin_block("ENTER_PIN", timeout_s=1)
    assert [sk.pin_from_block(b, ACCOUNT) for b in blocks] == pins[:2]

    text = caplog.text + "\n".join(trace)
    assert "PIN_BLOCK" in text and "LOAD_SESSION_KEY" in text  # the trace did run
    assert len(trace) >= 20
    for pin in pins:
        assert pin not in text
        assert pin.encode().hex() not in text.lower()
    secrets = [session_key, encrypted_key, kcv, *blocks, TEST_PINPAD_KEK]
    for secret in secrets:
        assert secret.hex() not in text.lower().replace(" ", "")
    assert ACCOUNT not in text
    for record in caplog.records:
        assert not any(pin in str(record.args) for pin in pins)


# --- the stand-alone simulator (cardstation sim pinpad) ------------------------------------------


def test_sim_server_from_stdin() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "cardstation.simulators.pinpad.server"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        path = proc.stdout.readline().strip()
        assert path.startswith("/dev/")
        proc.stdin.write("135246 enter\n")  # typed before the prompt: waits for it
        proc.stdin.flush()
        time.sleep(0.2)
        sk = SessionKeys(TEST_PINPAD_KEK)
        with PinPad(path, timeout=1.0) as pad:
            assert pad.hello().model == "CSPP-SIM"
            pad.load_session_key(*sk.new_session())
            counts: list[int] = []
            block = pad.read_pin_block("ENTER_PIN", on_progress=counts.append)
            assert sk.pin_from_block(block) == "135246"
            assert counts == [1, 2, 3, 4, 5, 6]
        proc.stdin.write("quit\n")
        proc.stdin.flush()
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert "prompt ENTER_PIN: 6..6 digits, 30 s" in out
        assert "digits entered: 6" in out
        assert "PIN block sent" in out
        assert "135246" not in out and "135246" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
