"""Start-up figures: `cardstation --version` from process start to exit, and
`cardstation serve --simulate` from process start to the health check answering SERVING
(issue 18 names the second `grpc.cold_start_ms`).

Both run with Python's bytecode cache allowed (PYTHONDONTWRITEBYTECODE removed from their
environment; the warm-up run writes it): an installed station has its modules compiled, and
compiling them again on every start would be most of what is measured."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time


def _station_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _version_ms() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cardstation", "--version"], check=True,
                   capture_output=True, timeout=60, env=_station_env())
    return (time.perf_counter() - t0) * 1000


def _start_to_serving_ms(folder: str) -> float:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from cardstation.benchmarks.grpc_api import served_simulated

    t0 = time.perf_counter()
    with served_simulated(folder, env=_station_env()) as (address, _), \
            grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.perf_counter() < t0 + 60:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return (time.perf_counter() - t0) * 1000
            except grpc.RpcError:
                pass
            time.sleep(0.005)
    raise RuntimeError("the server never answered SERVING")


def run(version_runs: int = 7, serve_runs: int = 3) -> list[dict]:
    _version_ms()  # warm the file cache: the figure is a station's second start, not its first
    version = [_version_ms() for _ in range(version_runs)]
    serving = []
    for _ in range(serve_runs + 1):  # the first compiles and caches the server's modules
        with tempfile.TemporaryDirectory(prefix="cardstation-start-bench-") as tmp:
            serving.append(_start_to_serving_ms(tmp))
    serving = serving[1:]
    return [
        {"name": "cli.version_ms", "value": round(statistics.median(version), 1), "unit": "ms",
         "runs": version_runs, "min": round(min(version), 1), "max": round(max(version), 1),
         "target": "<= 100"},
        {"name": "serve.start_to_serving_ms", "value": round(statistics.median(serving), 1),
         "unit": "ms", "runs": serve_runs, "min": round(min(serving), 1),
         "max": round(max(serving), 1), "target": "<= 600",
         "what": "serve --simulate --listen 127.0.0.1:0, process start to health SERVING"},
    ]
