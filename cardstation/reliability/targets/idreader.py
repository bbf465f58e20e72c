"""The GA 467 driver reading reader frames: whatever the reader answers, every driver
operation returns or raises an IdReaderError, and it reads a valid card afterwards.

The serial line is scripted: each command the driver writes is answered by the next reply of
the input, either a well-formed frame (right preamble, length and check byte) with generated
status bytes and data, often a mutated card-data block, or raw bytes.
"""

from __future__ import annotations

import random

from hypothesis import strategies as st

from cardstation.drivers.idreader import frames as fr
from cardstation.drivers.idreader.errors import IdReaderError
from cardstation.drivers.idreader.reader import Ga467Reader
from cardstation.reliability.fuzz_target import (
    ScriptedLine,
    Target,
    attach_line,
    mutate,
    reply_mutants,
    scripted,
)
from cardstation.simulators.idreader.model import SAMPLE_CARD, SAMPLE_SAM_ID

OPERATIONS = ("reset_sam", "sam_status", "sam_id", "find_card", "select_card", "read_card",
              "read_card_fp", "read_appended_addresses", "read_management_info",
              "set_max_rf_frame", "read_id_card")
SAMPLE_DATA = fr.build_card_data(SAMPLE_CARD.to_text_block(), SAMPLE_CARD.photo_wlt)
SAMPLE_DATA_FP = fr.build_card_data(SAMPLE_CARD.to_text_block(), SAMPLE_CARD.photo_wlt,
                                    bytes(fr.FINGERPRINT_SIZE))
#: One reply: ("frame", sw1, sw2, sw3, data) or ("raw", 0, 0, 0, bytes).
Reply = tuple[str, int, int, int, bytes]


class ReaderLine(ScriptedLine):
    """Each command written is answered by the next reply: a frame built from it, or raw."""

    def answer(self, written: bytes) -> None:
        if self.script:
            kind, sw1, sw2, sw3, payload = self.script.pop(0)
            if kind == "frame":
                self.pending += fr.build_reply(sw3, payload[:fr.REPLY_MAX_LEN - 4], sw1, sw2)
            else:
                self.pending += payload


def _make() -> Ga467Reader:
    return attach_line(Ga467Reader("loop://", timeout=0.01), "_serial", ReaderLine())


def _feed(reader: Ga467Reader, example: tuple[str, list[Reply]]) -> None:
    operation, replies = example
    with scripted(reader._serial, replies):
        if operation == "read_card_fp":
            reader.read_card(with_fingerprint=True)
        elif operation == "set_max_rf_frame":
            reader.set_max_rf_frame(0x40)
        else:
            getattr(reader, operation)()


def _alive(reader: Ga467Reader) -> None:
    """A card on the reader: find, select and read it, and get the holder right."""
    line = reader._serial
    line.script = [("frame", 0, 0, fr.Sw3.FIND_OK, bytes(fr.FIND_DATA_SIZE)),
                   ("frame", 0, 0, fr.Sw3.OK, bytes(fr.SELECT_SN_SIZE)),
                   ("frame", 0, 0, fr.Sw3.OK, SAMPLE_DATA)]
    card = reader.read_id_card()
    assert card.id_number == SAMPLE_CARD.id_number and card.name == SAMPLE_CARD.name
    line.script = [("frame", 0, 0, fr.Sw3.OK, SAMPLE_SAM_ID)]
    assert reader.sam_id().startswith("05.01-20150101-")


_data = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([SAMPLE_DATA, SAMPLE_DATA_FP, bytes(fr.FIND_DATA_SIZE),
                     bytes(fr.SELECT_SN_SIZE), SAMPLE_SAM_ID,
                     bytes(fr.APPENDED_ADDRESS_SIZE), bytes(fr.MANAGEMENT_INFO_SIZE)]),
    st.binary(min_size=fr.APPENDED_ADDRESS_SIZE, max_size=fr.APPENDED_ADDRESS_MAX + 2),
    # a well-framed read-card answer whose text block is generated: the decoder's turn
    st.builds(lambda text: fr.build_card_data(text, SAMPLE_CARD.photo_wlt),
              st.binary(min_size=fr.TEXT_SIZE, max_size=fr.TEXT_SIZE)
              | st.builds(lambda head, flag: (head + flag).ljust(fr.TEXT_SIZE, b" ")[
                  :fr.TEXT_SIZE],
                  st.binary(max_size=240), st.sampled_from([b"J\x00", b"I\x00", b"Y\x00",
                                                            b" \x00"]))),
)
_sw3 = st.sampled_from([int(s) for s in fr.Sw3]) | st.integers(0, 255)
_replies = st.one_of(
    st.tuples(st.just("frame"), st.just(0) | st.integers(0, 255),
              st.just(0) | st.integers(0, 255), _sw3, _data),
    st.tuples(st.just("raw"), st.just(0), st.just(0), st.just(0), st.binary(max_size=60)),
)


def _mutant(reply: Reply, rng: random.Random) -> Reply:
    kind, sw1, sw2, sw3, payload = reply
    if kind == "frame" and rng.random() < 0.3:  # the whole frame on the wire
        wire = fr.build_reply(sw3, payload[:fr.REPLY_MAX_LEN - 4], sw1, sw2)
        return ("raw", 0, 0, 0, mutate(wire, rng))
    return (kind, sw1, sw2, sw3, mutate(payload, rng))  # the content, framed correctly


TARGET = Target(
    name="idreader",
    strategy=st.tuples(st.sampled_from(OPERATIONS), st.lists(_replies, min_size=1,
                                                             max_size=4)),
    make=_make,
    feed=_feed,
    documented=(IdReaderError,),
    alive=_alive,
    expand=reply_mutants(_mutant),
)
