"""Start-up figures, each from process start:
- `cli.version_ms`: `cardstation --version` to its exit;
- `grpc.cold_start_ms`: the production `cardstation serve --config FILE` to the health check
  answering SERVING, with the devices already there, as at a station whose printer, readers,
  PSAM and CMS are powered before the PC starts the service: the simulated ones run in their
  own process (simulators/process.py), started before the clock;
- `serve.start_to_serving_ms`: `cardstation serve --simulate`, which also builds and starts
  every simulator (the CMS's sample photos, the printer, the vpcd cards) in the same process
  before it serves: the demo's start, given beside the first.

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


def _ms_to_serving(t0: float, address: str) -> float:
    """Milliseconds from `t0` until the health check at `address` answers SERVING."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address) as channel:
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


def _start_to_serving_ms(folder: str) -> float:
    from cardstation.benchmarks.grpc_api import served_simulated

    t0 = time.perf_counter()
    with served_simulated(folder, env=_station_env()) as (address, _):
        return _ms_to_serving(t0, address)


def _cold_start_ms(config: str) -> float:
    """The production serve, pointed at running simulators by `config`, to SERVING."""
    from cardstation.benchmarks.grpc_api import served

    t0 = time.perf_counter()
    with served(["--config", config], _station_env()) as (address, _):
        return _ms_to_serving(t0, address)


def _cold_starts(runs: int) -> list[float]:
    from pathlib import Path

    from cardstation.drivers.pcsc.readers import PcscContext
    from cardstation.simulators.process import SimulatedStationProcess

    with tempfile.TemporaryDirectory(prefix="cardstation-cold-start-") as tmp:
        folder = Path(tmp)
        with SimulatedStationProcess(folder / "devices", printed_faces=False) as sim:
            with PcscContext() as pcsc:  # the PSAM is in its reader before the PC starts
                pcsc.wait_for_card("Virtual PCD 00 01", timeout=10)
            config = folder / "cardstation.toml"
            config.write_text(sim.toml(), encoding="utf-8")
            times = [_cold_start_ms(str(config)) for _ in range(runs + 1)]
    return times[1:]  # the first compiles and caches the server's modules


def run(version_runs: int = 7, serve_runs: int = 3) -> list[dict]:
    _version_ms()  # warm the file cache: the figure is a station's second start, not its first
    version = [_version_ms() for _ in range(version_runs)]
    serving = []
    for _ in range(serve_runs + 1):  # the first compiles and caches the server's modules
        with tempfile.TemporaryDirectory(prefix="cardstation-start-bench-") as tmp:
            serving.append(_start_to_serving_ms(tmp))
    serving = serving[1:]
    cold = _cold_starts(serve_runs)
    return [
        {"name": "cli.version_ms", "value": round(statistics.median(version), 1), "unit": "ms",
         "runs": version_runs, "min": round(min(version), 1), "max": round(max(version), 1),
         "target": "<= 100"},
        {"name": "grpc.cold_start_ms", "value": round(statistics.median(cold), 1),
         "unit": "ms", "runs": serve_runs, "min": round(min(cold), 1),
         "max": round(max(cold), 1), "target": "<= 600",
         "what": "serve --config (devices simulated in their own process, already running) "
                 "--listen 127.0.0.1:0, process start to health SERVING"},
        {"name": "serve.start_to_serving_ms", "value": round(statistics.median(serving), 1),
         "unit": "ms", "runs": serve_runs, "min": round(min(serving), 1),
         "max": round(max(serving), 1),
         "what": "serve --simulate --listen 127.0.0.1:0, process start to health SERVING"},
    ]
