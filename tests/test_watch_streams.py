"""Watch streams (issue 18): a cap of their own with RESOURCE_EXHAUSTED beyond it while unary
calls and the health check are still served, a place freed when a stream ends, and one
station message built per change (on the broadcast thread) for every watcher. Over a real
socket to `serve --simulate`."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cardstation.config import Config
from cardstation.protos.cardstation.v1 import station_pb2 as spb
from cardstation.protos.cardstation.v1 import station_pb2_grpc
from cardstation.protos.errors import error_info
from tests.support.pcsc import ENCODER_READER, PSAM_READER

CAP = 4

pytestmark = pytest.mark.pcscd


@pytest.fixture
def served(pcsc_context: Any, tmp_path, monkeypatch) -> Iterator[Any]:
    from cardstation.commands.serve import start_server
    from cardstation.server import servicers

    built: list[str] = []  # the thread of every station picture built
    original = servicers.station_to_proto

    def counting(*args: Any, **kwargs: Any) -> Any:
        built.append(threading.current_thread().name)
        return original(*args, **kwargs)

    monkeypatch.setattr(servicers, "station_to_proto", counting)
    for reader in (ENCODER_READER, PSAM_READER):
        pcsc_context.wait_for_removal(reader, timeout=10)
    running = start_server(Config().with_values(server={"max_streams": CAP}), "127.0.0.1:0",
                           simulate=True, speed=0.0, blank_cards=1, folder=str(tmp_path))
    running.channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    running.built = built
    try:
        yield running
    finally:
        running.channel.close()
        running.stop()
        for reader in (ENCODER_READER, PSAM_READER):
            pcsc_context.wait_for_removal(reader, timeout=10)


def watch(running: Any) -> Any:
    return station_pb2_grpc.StationServiceStub(running.channel).WatchStation(
        spb.WatchStationRequest(interval_seconds=1), timeout=60)


def printer_status(message: Any) -> int:
    return next(d.status for d in message.station.devices if d.name == "printer")


def test_streams_have_a_cap_of_their_own_and_share_one_picture(served) -> None:
    streams = [watch(served) for _ in range(CAP)]
    try:
        firsts = [next(s) for s in streams]
        assert all(f == firsts[0] for f in firsts)  # the same picture for every watcher
        # one stream more is refused at once, naming why
        with pytest.raises(grpc.RpcError) as refused:
            next(watch(served))
        assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        info = error_info(refused.value)
        assert info is not None and info.reason == "STREAMS_EXHAUSTED"
        assert f"{CAP} watch streams" in info.metadata["cause"]
        # unary calls and the health check still have their workers
        station = station_pb2_grpc.StationServiceStub(served.channel)
        assert station.GetStation(spb.GetStationRequest(), timeout=5).station.id
        health = health_pb2_grpc.HealthStub(served.channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert health.status in (health_pb2.HealthCheckResponse.SERVING,
                                 health_pb2.HealthCheckResponse.NOT_SERVING)
        # a change reaches every watcher, built once on the broadcast thread
        served.built.clear()
        served.simulated.model.inject("cover_open")
        for stream in streams[1:]:
            message = next(stream)
            while printer_status(message) != spb.DEVICE_STATUS_FAULT:
                message = next(stream)
        assert served.built and set(served.built) == {"station-broadcast"}, served.built
        # a stream that ends gives its place back
        streams[0].cancel()
        deadline = time.monotonic() + 10
        while True:
            again = watch(served)
            try:
                assert next(again).station.id
                streams[0] = again
                break
            except grpc.RpcError as exc:
                assert exc.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
                assert time.monotonic() < deadline, "the cancelled stream kept its place"
                time.sleep(0.1)
    finally:
        for stream in streams:
            stream.cancel()
