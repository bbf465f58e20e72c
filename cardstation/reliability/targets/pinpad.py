"""The PIN pad driver reading CSPP/1 frames: whatever the pad sends, every driver operation
returns or raises a PinPadException, and it answers HELLO correctly afterwards.

The line is scripted: each command the driver writes is answered by the next reply of the
input, a list of frames (seq echoed, 0 or any; answer codes or any; generated data) or raw
bytes. Once the answer to the last command is read the line goes dead (a read error), so
an input costs no waiting; the liveness check uses a quiet line and the driver's own
deadline instead.
"""

from __future__ import annotations

import random

from hypothesis import strategies as st

from cardstation.drivers.pinpad.errors import PinPadException
from cardstation.drivers.pinpad.pinpad import PinPad
from cardstation.drivers.pinpad.protocol import (
    CHECK_VALUE_LEN,
    MAX_DATA,
    PIN_BLOCK_LEN,
    SESSION_KEY_LEN,
    Cmd,
    FrameDecoder,
    build_frame,
)
from cardstation.reliability.fuzz_target import (
    ScriptedLine,
    Target,
    attach_line,
    mutate,
    reply_mutants,
    scripted,
)

OPERATIONS = ("hello", "load_session_key", "read_pin_block", "cancel")
IDENTITY = b"\x07CSPP-01\x04SN01\x031.0"
#: One frame of a reply: (seq mode 0 echo / 1 zero / 2 `seq`, cmd, data); a reply is a list.
FrameSpec = tuple[int, int, int, bytes]
Reply = tuple[str, list[FrameSpec], bytes]  # ("frames", [...], b"") or ("raw", [], bytes)


class PadLine(ScriptedLine):
    """Each command frame written is answered by the next reply: frames built from it (seq
    echoed, 0 or given), or raw bytes."""

    def __init__(self) -> None:
        super().__init__(dead_when_quiet=True)
        self._host = FrameDecoder()

    def answer(self, written: bytes) -> None:
        for item in self._host.feed(written):
            seq = getattr(item, "seq", 0) or 0
            if not self.script:
                continue
            kind, frames, raw = self.script.pop(0)
            if kind == "raw":
                self.pending += raw
                continue
            for mode, explicit, cmd, payload in frames:
                answer_seq = seq if mode == 0 else 0 if mode == 1 else explicit
                self.pending += build_frame(answer_seq, cmd, payload[:MAX_DATA])


def _make() -> PinPad:
    return attach_line(PinPad("loop://", timeout=0.05), "_port", PadLine())


def _feed(pad: PinPad, example: tuple[str, list[Reply]]) -> None:
    operation, replies = example
    with scripted(pad._port, replies):
        if operation == "load_session_key":
            pad.load_session_key(bytes(SESSION_KEY_LEN), bytes(CHECK_VALUE_LEN))
        elif operation == "read_pin_block":
            pad.read_pin_block("ENTER_PIN", timeout_s=1, on_progress=lambda _n: None)
        else:
            getattr(pad, operation)()


def _alive(pad: PinPad) -> None:
    """HELLO answered with the identity: hello() returns it. A partial frame left by the
    fuzz ends at the driver's deadline (FrameError, as the protocol says), so one retry."""
    line = pad._port
    line.dead_when_quiet = False  # a quiet line: the driver's deadline applies
    try:
        for attempt in range(2):
            line.script = [("frames", [(0, 0, Cmd.ACK, IDENTITY)], b"")]
            try:
                info = pad.hello()
            except PinPadException:
                if attempt:
                    raise
                continue
            assert (info.model, info.serial, info.firmware) == ("CSPP-01", "SN01", "1.0")
            return
    finally:
        line.dead_when_quiet = True
        line.script = []


_answers = st.sampled_from([int(c) for c in Cmd if c >= 0x80]) | st.integers(0, 255)
_data = st.one_of(
    st.just(b""), st.binary(min_size=1, max_size=1),
    st.binary(min_size=PIN_BLOCK_LEN, max_size=PIN_BLOCK_LEN), st.just(IDENTITY),
    st.binary(max_size=40),
    st.builds(lambda parts: b"".join(bytes([len(p)]) + p for p in parts),
              st.lists(st.binary(max_size=12), max_size=4)),
)
_frames = st.lists(st.tuples(st.sampled_from([0, 0, 0, 1, 2]), st.integers(0, 255), _answers,
                             _data), min_size=1, max_size=4)
_replies = st.one_of(
    st.tuples(st.just("frames"), _frames, st.just(b"")),
    st.tuples(st.just("raw"), st.just([]), st.binary(max_size=40)),
)


def _mutant(reply: Reply, rng: random.Random) -> Reply:
    kind, frames, raw = reply
    if kind == "frames":  # the frames on the wire, mutated (bad LRC, ETX, length...)
        raw = b"".join(build_frame(seq if mode == 2 else 1, cmd, data[:MAX_DATA])
                       for mode, seq, cmd, data in frames)
    return ("raw", [], mutate(raw, rng))


TARGET = Target(
    name="pinpad",
    strategy=st.tuples(st.sampled_from(OPERATIONS), st.lists(_replies, min_size=1,
                                                             max_size=4)),
    make=_make,
    feed=_feed,
    documented=(PinPadException,),
    alive=_alive,
    expand=reply_mutants(_mutant),
)
