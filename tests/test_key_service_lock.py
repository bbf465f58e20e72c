"""The PSAM key service from two threads at once, as the pipeline's device worker (external
authentication: diversify, then encrypt) and the window's gRPC threads (PIN unblock MAC:
diversify, then MAC) use it, on the real PC/SC stack with the PSAM simulator in its vpcd slot.
Each answer must be the one the TEST keys give for its own inputs: an interleaved sequence
would encrypt under the other caller's session key."""

from __future__ import annotations

import os
import threading

import pytest

from cardstation.drivers.pcsc.transport import PcscTransport
from cardstation.personalization.keys.scheme import Alg
from cardstation.personalization.keys.service import PsamKeyService, SoftwareKeyService
from cardstation.simulators.card import Psam
from tests.support.pcsc import PSAM_READER

pytestmark = pytest.mark.pcscd
ROUNDS = 40
ATR = bytes.fromhex("3B6C0000") + bytes(range(8))


def test_two_callers_never_interleave_a_psam_sequence(psam_slot) -> None:
    psam_slot.insert(Psam(alg=Alg.TDES))

    def open_psam() -> PcscTransport:
        transport = PcscTransport(PSAM_READER)
        transport.connect()
        return transport

    service = PsamKeyService(open_psam)
    expected = SoftwareKeyService(test_keys_allowed=True)
    wrong: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def pipeline() -> None:  # external authentication of card after card
        start.wait()
        for i in range(ROUNDS):
            challenge, city = os.urandom(8), f"41{i % 100:04d}"
            got = service.external_auth(0x04, ATR, city, challenge, Alg.TDES)
            if got != expected.external_auth(0x04, ATR, city, challenge, Alg.TDES):
                wrong.append(f"external_auth round {i}")

    def window() -> None:  # PIN unblock at the window meanwhile
        start.wait()
        for i in range(ROUNDS):
            challenge = os.urandom(8)
            got = service.unblock_mac(ATR, "410700", challenge, Alg.TDES)
            if got != expected.unblock_mac(ATR, "410700", challenge, Alg.TDES):
                wrong.append(f"unblock_mac round {i}")

    def run(target) -> threading.Thread:
        def guarded() -> None:
            try:
                target()
            except BaseException as exc:  # reported below
                errors.append(exc)
        thread = threading.Thread(target=guarded)
        thread.start()
        return thread

    try:
        for thread in (run(pipeline), run(window)):
            thread.join(120)
    finally:
        service.close()
    assert not errors, errors
    assert not wrong, wrong
