"""Assemble and run the gRPC server: servicers, health (per device), reflection, auth, audit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from cardstation.protos.cardstation.v1 import (
    intake_pb2,
    intake_pb2_grpc,
    issuance_pb2,
    issuance_pb2_grpc,
    returns_pb2,
    returns_pb2_grpc,
    station_pb2,
    station_pb2_grpc,
    window_pb2,
    window_pb2_grpc,
)

from . import limits
from .aio import AioInterceptor, AioServer
from .guard import RequestGuard
from .intake_servicer import IntakeServicer
from .runtime import StationRuntime, StationSnapshot
from .servicers import IssuanceServicer, ReturnServicer, StationServicer, station_broadcast
from .streams import DEFAULT_MAX_STREAMS, StreamGate
from .window_servicer import WindowServicer

SERVICE_NAMES = (
    issuance_pb2.DESCRIPTOR.services_by_name["IssuanceService"].full_name,
    station_pb2.DESCRIPTOR.services_by_name["StationService"].full_name,
    returns_pb2.DESCRIPTOR.services_by_name["ReturnService"].full_name,
    window_pb2.DESCRIPTOR.services_by_name["WindowService"].full_name,
    intake_pb2.DESCRIPTOR.services_by_name["IntakeService"].full_name,
)
# Threads for unary calls (the servicers' functions; watch streams are coroutines and take
# none): enough for the consoles and upstream callers of a county centre at once.
UNARY_WORKERS = 64


def _health_updater(set_health: Callable[[str, Any], None]) -> Callable[[StationSnapshot], None]:
    serving = health_pb2.HealthCheckResponse.SERVING
    not_serving = health_pb2.HealthCheckResponse.NOT_SERVING

    def update(snapshot: StationSnapshot) -> None:
        ready = {d.name: d.status in ("READY", "BUSY") for d in snapshot.devices if not d.lane}
        for name, ok in ready.items():
            set_health(f"cardstation.{name}", serving if ok else not_serving)
        lanes_ok = []
        for lane in snapshot.lanes:  # a printer with its encoder, each by name
            ok = all(d.status in ("READY", "BUSY") for d in (lane.printer, lane.encoder))
            lanes_ok.append(ok)
            set_health(f"cardstation.printer.{lane.name}", serving if ok else not_serving)
        # "cardstation.printer": some printer can make a card (the station keeps working)
        set_health("cardstation.printer", serving if any(lanes_ok) else not_serving)
        encoders = [lane.encoder.status in ("READY", "BUSY") for lane in snapshot.lanes]
        set_health("cardstation.encoder", serving if any(encoders) else not_serving)
        overall = serving if any(lanes_ok) and ready.get("journal", True) else not_serving
        set_health("", overall)
        for service in SERVICE_NAMES:
            set_health(service, overall)

    return update


def build_server(
    runtime: StationRuntime,
    listen: str,
    credentials: grpc.ServerCredentials | None = None,
    interceptors: Sequence[grpc.ServerInterceptor] = (),
    max_streams: int = DEFAULT_MAX_STREAMS,
) -> tuple[AioServer, int]:
    """A ready (not yet started) server bound to `listen`; returns (server, port). The
    request guard is always the innermost interceptor (after authentication). Watch streams
    are coroutines on the server's loop, up to `max_streams`; unary calls run on
    UNARY_WORKERS threads of their own, which no stream takes."""
    limits.apply_pillow_limits()
    aio = AioServer(UNARY_WORKERS, [AioInterceptor(i) for i in (*interceptors, RequestGuard())],
                    [("grpc.max_receive_message_length", limits.MAX_RECEIVE_BYTES),
                     # calls that arrived and wait for the loop to take them: grpc drops
                     # them beyond 3,000 by default, so consoles that all reconnect at once
                     # (a network blip) would lose their streams
                     ("grpc.server.max_pending_requests", 2 * max_streams + 1000),
                     ("grpc.server.max_pending_requests_hard_limit", 2 * max_streams + 2000)])
    server = aio.server
    streams = StreamGate(max_streams)
    broadcast = station_broadcast(runtime)
    broadcast.signal.bind(aio.loop)
    window = WindowServicer(runtime, streams)
    window.pin_progress.signal.bind(aio.loop)
    # the server's stop reaches the PIN watchers too (a station change; they look again)
    runtime.events.station_listeners.append(window.pin_progress.signal.notify)
    issuance_pb2_grpc.add_IssuanceServiceServicer_to_server(IssuanceServicer(runtime, streams),
                                                            server)
    station_pb2_grpc.add_StationServiceServicer_to_server(
        StationServicer(runtime, streams, broadcast), server)
    returns_pb2_grpc.add_ReturnServiceServicer_to_server(ReturnServicer(runtime), server)
    window_pb2_grpc.add_WindowServiceServicer_to_server(window, server)
    intake_pb2_grpc.add_IntakeServiceServicer_to_server(IntakeServicer(runtime, window), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)

    def set_health(service: str, status: Any) -> None:  # told from the runtime's threads
        asyncio.run_coroutine_threadsafe(health_servicer.set(service, status), aio.loop)

    update = _health_updater(set_health)
    update(runtime.snapshot)
    runtime.on_snapshot = update
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    try:
        if credentials is None:
            port = aio.add_insecure_port(listen)
        else:
            port = aio.add_secure_port(listen, credentials)
    except RuntimeError:  # grpc's "Failed to bind": the address is taken or not this PC's
        port = 0
    if port == 0:
        aio.stop(None).wait()
        raise OSError(f"cannot listen on {listen}: the address is in use (another cardstation "
                      "serve?) or not one of this PC's — stop the other server, or change "
                      "[server] listen / --listen")
    return aio, port
