"""A served simulated station for API tests: `cardstation serve --simulate` in this process,
with a channel to it (`running.channel`), stopped with the readers emptied afterwards; and what
the tests ask of it over the API (its jobs, their last event, a refusal) and of its simulators."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc
import pytest

from cardstation.config import Config
from cardstation.protos.cardstation.v1 import issuance_pb2 as ipb
from cardstation.protos.cardstation.v1 import issuance_pb2_grpc
from cardstation.server.errors import error_info
from tests.support.pcsc import ENCODER_READER, PSAM_READER
from tests.support.world import ledger_returns as ledger_returns_of


@contextmanager
def served_station(folder: str, blank_cards: int) -> Iterator[Any]:
    from cardstation.commands.serve import start_server
    from cardstation.drivers.pcsc.readers import PcscContext
    from cardstation.pcscd import ensure_running

    ensure_running()
    running = start_server(Config(), "127.0.0.1:0", simulate=True, speed=0.0,
                           blank_cards=blank_cards, folder=folder)
    running.channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield running
    finally:
        running.channel.close()
        running.stop()
        with PcscContext() as pcsc:
            for reader in (ENCODER_READER, PSAM_READER):
                pcsc.wait_for_removal(reader, timeout=10)


def issuances(api: Any) -> issuance_pb2_grpc.IssuanceServiceStub:
    """The IssuanceService of the served station."""
    return issuance_pb2_grpc.IssuanceServiceStub(api.channel)


def final_event(api: Any, issuance_id: str, timeout: float = 60) -> ipb.IssuanceEvent:
    """The job's final event, watched for."""
    last = None
    for response in issuances(api).WatchIssuance(ipb.WatchIssuanceRequest(id=issuance_id),
                                                 timeout=timeout):
        last = response.event
        if last.final:
            break
    assert last is not None
    return last


def ledger_returns(api: Any, id_number: str) -> list[dict]:
    """The returns the station's CMS simulator holds for one applicant."""
    return ledger_returns_of(api.simulated, id_number)


def chips_written(api: Any) -> list[int]:
    """Per loaded blank: how many items were written to its chip."""
    return [sum(chip.writes.values()) for chip in api.simulated.chips]


def rpc_error(call: Callable[[], object]) -> tuple[grpc.StatusCode, str, str]:
    """The refusal `call` gets: its status code, ErrorInfo reason and message."""
    with pytest.raises(grpc.RpcError) as info:
        call()
    details = error_info(info.value)
    return info.value.code(), details.reason if details else "", info.value.details() or ""
