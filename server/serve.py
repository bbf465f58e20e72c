"""Assemble and run the gRPC server: servicers, health (per device), reflection, auth, audit."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent import futures

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
from .guard import RequestGuard
from .intake_servicer import IntakeServicer
from .runtime import StationRuntime, StationSnapshot
from .servicers import IssuanceServicer, ReturnServicer, StationServicer
from .window_servicer import WindowServicer

SERVICE_NAMES = (
    issuance_pb2.DESCRIPTOR.services_by_name["IssuanceService"].full_name,
    station_pb2.DESCRIPTOR.services_by_name["StationService"].full_name,
    returns_pb2.DESCRIPTOR.services_by_name["ReturnService"].full_name,
    window_pb2.DESCRIPTOR.services_by_name["WindowService"].full_name,
    intake_pb2.DESCRIPTOR.services_by_name["IntakeService"].full_name,
)
# Streams (WatchIssuance, WatchStation) hold a thread each; size the pool for the many
# consoles and upstream watchers a county centre has, plus headroom for unary calls.
MAX_WORKERS = 1024


def _health_updater(health_servicer: health.HealthServicer):
    serving = health_pb2.HealthCheckResponse.SERVING
    not_serving = health_pb2.HealthCheckResponse.NOT_SERVING

    def update(snapshot: StationSnapshot) -> None:
        ready = {d.name: d.status in ("READY", "BUSY") for d in snapshot.devices if not d.lane}
        for name, ok in ready.items():
            health_servicer.set(f"cardstation.{name}", serving if ok else not_serving)
        lanes_ok = []
        for lane in snapshot.lanes:  # a printer with its encoder, each by name
            ok = all(d.status in ("READY", "BUSY") for d in (lane.printer, lane.encoder))
            lanes_ok.append(ok)
            health_servicer.set(f"cardstation.printer.{lane.name}", serving if ok else not_serving)
        # "cardstation.printer": some printer can make a card (the station keeps working)
        health_servicer.set("cardstation.printer", serving if any(lanes_ok) else not_serving)
        encoders = [lane.encoder.status in ("READY", "BUSY") for lane in snapshot.lanes]
        health_servicer.set("cardstation.encoder", serving if any(encoders) else not_serving)
        overall = serving if any(lanes_ok) and ready.get("journal", True) else not_serving
        health_servicer.set("", overall)
        for service in SERVICE_NAMES:
            health_servicer.set(service, overall)

    return update


def build_server(
    runtime: StationRuntime,
    listen: str,
    credentials: grpc.ServerCredentials | None = None,
    interceptors: Sequence[grpc.ServerInterceptor] = (),
) -> tuple[grpc.Server, int]:
    """A started-ready (not yet started) server bound to `listen`; returns (server, port).
    The request guard is always the innermost interceptor (after authentication)."""
    limits.apply_pillow_limits()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=MAX_WORKERS,
                                                    thread_name_prefix="grpc"),
                         interceptors=[*interceptors, RequestGuard()],
                         options=[("grpc.max_receive_message_length",
                                   limits.MAX_RECEIVE_BYTES)],
                         maximum_concurrent_rpcs=MAX_WORKERS - 24)
    issuance_pb2_grpc.add_IssuanceServiceServicer_to_server(IssuanceServicer(runtime), server)
    station_pb2_grpc.add_StationServiceServicer_to_server(StationServicer(runtime), server)
    returns_pb2_grpc.add_ReturnServiceServicer_to_server(ReturnServicer(runtime), server)
    window = WindowServicer(runtime)
    window_pb2_grpc.add_WindowServiceServicer_to_server(window, server)
    intake_pb2_grpc.add_IntakeServiceServicer_to_server(IntakeServicer(runtime, window), server)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    update = _health_updater(health_servicer)
    update(runtime.snapshot)
    runtime.on_snapshot = update
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    try:
        if credentials is None:
            port = server.add_insecure_port(listen)
        else:
            port = server.add_secure_port(listen, credentials)
    except RuntimeError:  # grpc's "Failed to bind": the address is taken or not this PC's
        port = 0
    if port == 0:
        raise OSError(f"cannot listen on {listen}: the address is in use (another cardstation "
                      "serve?) or not one of this PC's — stop the other server, or change "
                      "[server] listen / --listen")
    return server, port
