"""A gRPC server of fake servicers (canned answers that carry who they saw calling) behind an
interceptor, on 127.0.0.1:0 with health and reflection; calls to any of our RPCs by name, and
the refusal a call is expected to get."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pool, message_factory
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
from cardstation.server.auth.interceptor import AuthInterceptor, current_identity
from cardstation.server.errors import abort_with, error_info
from cardstation.server.serve import SERVICE_NAMES

#: every service `serve` registers (its own list: a service added there is covered here)
SERVICES = [descriptor_pool.Default().FindServiceByName(name) for name in SERVICE_NAMES]


def _who() -> str:
    ident = current_identity()
    return "" if ident is None else f"{ident.name}/{ident.role.value}/{ident.via}"


class FakeIssuance(issuance_pb2_grpc.IssuanceServiceServicer):
    """Canned answers; the issuance's `reason` carries who the servicer saw calling."""

    def _issuance(self, issuance_id: str = "iss-1") -> issuance_pb2.Issuance:
        return issuance_pb2.Issuance(id=issuance_id, reason=_who(),
                                     state=issuance_pb2.ISSUANCE_STATE_QUEUED)

    def GetApplication(self, request: Any, context: Any) -> Any:
        return issuance_pb2.GetApplicationResponse(
            application=issuance_pb2.Application(name="张三"))

    def PreviewCard(self, request: Any, context: Any) -> Any:
        return issuance_pb2.PreviewCardResponse(front_png=b"png")

    def CreateIssuance(self, request: Any, context: Any) -> Any:
        return issuance_pb2.CreateIssuanceResponse(issuance=self._issuance(), created=True)

    def GetIssuance(self, request: Any, context: Any) -> Any:
        return issuance_pb2.GetIssuanceResponse(issuance=self._issuance(request.id))

    def ListIssuances(self, request: Any, context: Any) -> Any:
        return issuance_pb2.ListIssuancesResponse(issuances=[self._issuance()])

    def WatchIssuance(self, request: Any, context: Any) -> Iterator[Any]:
        for i in range(3):
            yield issuance_pb2.WatchIssuanceResponse(
                event=issuance_pb2.IssuanceEvent(issuance_id=request.id, message=_who(),
                                                 final=i == 2))

    def CancelIssuance(self, request: Any, context: Any) -> Any:
        if request.id == "missing":
            abort_with(context, grpc.StatusCode.NOT_FOUND, "ISSUANCE_NOT_FOUND",
                       "no such issuance", {"id": request.id})
        return issuance_pb2.CancelIssuanceResponse(issuance=self._issuance(request.id))

    def ResumeIssuance(self, request: Any, context: Any) -> Any:
        return issuance_pb2.ResumeIssuanceResponse(issuance=self._issuance(request.id))

    def ReprintFace(self, request: Any, context: Any) -> Any:
        return issuance_pb2.ReprintFaceResponse(issuance=self._issuance(request.id))

    def RejectCard(self, request: Any, context: Any) -> Any:
        return issuance_pb2.RejectCardResponse(issuance=self._issuance(request.id))

    def MarkSpoiled(self, request: Any, context: Any) -> Any:
        return issuance_pb2.MarkSpoiledResponse(issuance=self._issuance(request.id))

    def RestoreAndResend(self, request: Any, context: Any) -> Any:
        return issuance_pb2.RestoreAndResendResponse(issuance=self._issuance(request.id))


class FakeStation(station_pb2_grpc.StationServiceServicer):
    def GetStation(self, request: Any, context: Any) -> Any:
        return station_pb2.GetStationResponse(station=station_pb2.Station(id=_who()))

    def WatchStation(self, request: Any, context: Any) -> Iterator[Any]:
        for _ in range(2):
            yield station_pb2.WatchStationResponse(station=station_pb2.Station(id=_who()))

    def CalibrateRibbonSensor(self, request: Any, context: Any) -> Any:
        return station_pb2.CalibrateRibbonSensorResponse(
            calibration=station_pb2.SensorCalibration(ok=True))

    def CleanCardPath(self, request: Any, context: Any) -> Any:
        return station_pb2.CleanCardPathResponse(printer=station_pb2.PrinterCondition())

    def ResetPrinter(self, request: Any, context: Any) -> Any:
        return station_pb2.ResetPrinterResponse(printer=station_pb2.PrinterCondition())


class FakeReturns(returns_pb2_grpc.ReturnServiceServicer):
    def ListReturns(self, request: Any, context: Any) -> Any:
        return returns_pb2.ListReturnsResponse(returns=[returns_pb2.Return(id=7)])

    def RetryReturns(self, request: Any, context: Any) -> Any:
        return returns_pb2.RetryReturnsResponse(scheduled=1)


class _Empty:
    """Every RPC of the service answers its empty response (the real ones are tested
    elsewhere)."""

    module: Any
    service_name = ""

    def __getattribute__(self, name: str) -> Any:
        module = type(self).module
        service = module.DESCRIPTOR.services_by_name[type(self).service_name]
        if name in service.methods_by_name:
            method = service.methods_by_name[name]
            response = getattr(module, method.output_type.name)
            if method.server_streaming:
                return lambda request, context: iter([response()])
            return lambda request, context: response()
        return super().__getattribute__(name)


class FakeWindow(_Empty, window_pb2_grpc.WindowServiceServicer):
    module, service_name = window_pb2, "WindowService"


class FakeIntake(_Empty, intake_pb2_grpc.IntakeServiceServicer):
    module, service_name = intake_pb2, "IntakeService"


def full_name(service: Any, method: Any) -> str:
    return f"/{service.full_name}/{method.name}"


def all_methods() -> list[str]:
    return [full_name(s, m) for s in SERVICES for m in s.methods]


def _method(name: str) -> Any:
    for service in SERVICES:
        for method in service.methods:
            if full_name(service, method) == name:
                return method
    raise KeyError(name)


class Harness:
    """A grpc.server on 127.0.0.1:0 with the fakes, health, reflection and an interceptor."""

    def __init__(
        self,
        interceptor: AuthInterceptor,
        server_credentials: grpc.ServerCredentials | None = None,
    ) -> None:
        self.interceptor = interceptor
        self.server = grpc.server(ThreadPoolExecutor(max_workers=8), interceptors=[interceptor])
        issuance_pb2_grpc.add_IssuanceServiceServicer_to_server(FakeIssuance(), self.server)
        station_pb2_grpc.add_StationServiceServicer_to_server(FakeStation(), self.server)
        returns_pb2_grpc.add_ReturnServiceServicer_to_server(FakeReturns(), self.server)
        window_pb2_grpc.add_WindowServiceServicer_to_server(FakeWindow(), self.server)
        intake_pb2_grpc.add_IntakeServiceServicer_to_server(FakeIntake(), self.server)
        health_servicer = health.HealthServicer()
        health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, self.server)
        reflection.enable_server_reflection(
            [s.full_name for s in SERVICES] + [reflection.SERVICE_NAME], self.server)
        if server_credentials is None:
            self.port = self.server.add_insecure_port("127.0.0.1:0")
        else:
            self.port = self.server.add_secure_port("127.0.0.1:0", server_credentials)
        self.server.start()
        self.channels: list[grpc.Channel] = []

    def channel(self, credentials: grpc.ChannelCredentials | None = None,
                host: str = "127.0.0.1") -> grpc.Channel:
        target = f"{host}:{self.port}"
        ch = (grpc.insecure_channel(target) if credentials is None
              else grpc.secure_channel(target, credentials))
        self.channels.append(ch)
        return ch

    def stop(self) -> None:
        for ch in self.channels:
            ch.close()
        self.server.stop(None)


def call(channel: grpc.Channel, method: str, token: str | None = None,
         request: Any = None) -> Any:
    """Call any of our RPCs by full name; a streaming call returns the list of responses."""
    desc = _method(method)
    req_cls = message_factory.GetMessageClass(desc.input_type)
    resp_cls = message_factory.GetMessageClass(desc.output_type)
    metadata = [("authorization", f"Bearer {token}")] if token else None
    kwargs = {"request_serializer": req_cls.SerializeToString,
              "response_deserializer": resp_cls.FromString}
    request = req_cls() if request is None else request
    if desc.server_streaming:
        stub = channel.unary_stream(method, **kwargs)
        return list(stub(request, metadata=metadata, timeout=10))
    stub = channel.unary_unary(method, **kwargs)
    return stub(request, metadata=metadata, timeout=10)


def expect_error(code: grpc.StatusCode, reason: str, fn: Any, *args: Any, **kw: Any) -> Any:
    with pytest.raises(grpc.RpcError) as caught:
        fn(*args, **kw)
    err = caught.value
    assert err.code() == code, (err.code(), err.details())
    info = error_info(err)
    assert info is not None
    assert info.reason == reason
    assert info.domain == "cardstation.v1"
    return err, info
