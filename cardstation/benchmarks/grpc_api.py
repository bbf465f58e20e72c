"""gRPC server figures: GetStation latency and calls/s under 100 concurrent clients for 10 s,
the same against the server with authentication passed through (the interceptor's share), the
number of WatchStation streams held at once, and the server's resident memory while holding them.

The server is `cardstation serve --simulate` in its own process; the load comes from this
process through grpc.aio (one channel per client), so the two do not share a GIL.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _get_station_load(address: str, clients: int, seconds: float) -> list[float]:
    import grpc

    from cardstation.protos.cardstation.v1 import station_pb2 as spb
    from cardstation.protos.cardstation.v1 import station_pb2_grpc

    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds

    async def client() -> None:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = station_pb2_grpc.StationServiceStub(channel)
            await stub.GetStation(spb.GetStationRequest(), timeout=10)  # connect first
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                await stub.GetStation(spb.GetStationRequest(), timeout=10)
                latencies.append((time.perf_counter() - t0) * 1000)

    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies


async def _hold_watch_streams(address: str, streams: int, pid: int) -> tuple[int, float]:
    import grpc

    from cardstation.protos.cardstation.v1 import station_pb2 as spb
    from cardstation.protos.cardstation.v1 import station_pb2_grpc

    channels = [grpc.aio.insecure_channel(address) for _ in range(max(1, streams // 50))]
    calls = []
    held = 0
    try:
        for i in range(streams):
            stub = station_pb2_grpc.StationServiceStub(channels[i % len(channels)])
            calls.append(stub.WatchStation(spb.WatchStationRequest(interval_seconds=5)))

        async def first(call) -> bool:  # call: a grpc.aio stream call
            try:
                await asyncio.wait_for(call.read(), timeout=60)
                return True
            except Exception:
                return False

        results = await asyncio.gather(*(first(c) for c in calls))
        held = sum(results)
        await asyncio.sleep(1.0)
        rss = _rss_mb(pid)
    finally:
        for call in calls:
            call.cancel()
        for channel in channels:
            await channel.close()
    return held, rss


@contextlib.contextmanager
def served_simulated(folder: str, authenticated: bool = True,
                     env: dict[str, str] | None = None) -> Iterator[tuple[str, int]]:
    """`cardstation serve --simulate` in its own process: (address, pid) while it runs.
    `authenticated` False: the benchmark-only server whose interceptor lets every call by;
    `env` the process's environment (default: this one's)."""
    entry = "cardstation" if authenticated else "cardstation.benchmarks.serve_unauthenticated"
    server = subprocess.Popen(
        [sys.executable, "-m", entry, "serve", "--simulate", "--listen",
         "127.0.0.1:0", "--speed", "0", "--blank-cards", "1", "--folder", folder],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        line = server.stdout.readline()
        if not line.startswith("listening on"):
            raise RuntimeError(f"server did not start: {line!r}")
        yield line.split()[-1], server.pid
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()


def run(clients: int = 100, seconds: float = 10.0, streams: int = 500) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="cardstation-grpc-bench-") as tmp, \
            served_simulated(tmp) as (address, pid):
        idle_rss = _rss_mb(pid)
        latencies = asyncio.run(_get_station_load(address, clients, seconds))
        held, rss = asyncio.run(_hold_watch_streams(address, streams, pid))
    with tempfile.TemporaryDirectory(prefix="cardstation-grpc-bench-") as tmp, \
            served_simulated(tmp, authenticated=False) as (address, _):
        bare = asyncio.run(_get_station_load(address, clients, seconds))
    ordered = sorted(latencies)
    context = {"clients": clients, "seconds": seconds, "calls": len(latencies),
               "calls_per_s": round(len(latencies) / seconds, 1),
               "server": "serve --simulate, own process; load via grpc.aio"}
    per_s = len(latencies) / seconds
    bare_per_s = len(bare) / seconds
    return [
        {"name": "grpc.get_station_calls_per_s", "value": round(per_s, 1), "unit": "calls/s",
         "clients": clients, "seconds": seconds},
        {"name": "grpc.get_station_calls_per_s.unauthenticated", "value": round(bare_per_s, 1),
         "unit": "calls/s", "clients": clients, "seconds": seconds,
         "server": "the same, its interceptor a pass-through (benchmark only)"},
        {"name": "grpc.get_station_auth_ratio", "value": round(per_s / bare_per_s, 3),
         "unit": "ratio", "target": ">= 0.9"},
        {"name": "grpc.get_station_ms.p50", "value": round(statistics.median(ordered), 2),
         "unit": "ms", **context},
        {"name": "grpc.get_station_ms.p99",
         "value": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 2),
         "unit": "ms", **context},
        {"name": "grpc.watch_streams_held", "value": held, "unit": "streams",
         "target": ">= 500", "asked": streams},
        {"name": "grpc.server_rss_mb", "value": round(rss, 1), "unit": "MB",
         "streams_held": held, "idle_rss_mb": round(idle_rss, 1)},
    ]
