"""gRPC server figures: GetStation latency and calls/s under 100 concurrent clients for 10 s,
the same against the server with authentication passed through (the interceptor's share), the
number of WatchStation streams held at once (as many as the server's cap, 5,000), the server's
resident memory per stream, GetStation at 200 calls/s (open loop) while they are held, the
health check at the cap (one stream more is refused), and the fan-out of one station change to
1,000 streams (from the first stream that has it to the last).

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


async def _hold_watch_streams(address: str, streams: int, pid: int,
                              fanout_streams: int = 1000) -> dict[str, float]:
    """Hold `streams` WatchStation streams; meanwhile GetStation open loop, the health check
    at the cap, and the fan-out of the changes a card job makes to `fanout_streams` of them."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from cardstation.protos.cardstation.v1 import issuance_pb2 as ipb
    from cardstation.protos.cardstation.v1 import issuance_pb2_grpc, station_pb2_grpc
    from cardstation.protos.cardstation.v1 import station_pb2 as spb
    channels = [grpc.aio.insecure_channel(address) for _ in range(max(1, streams // 50))]
    control = grpc.aio.insecure_channel(address)
    calls = []
    figures: dict[str, float] = {}
    try:
        for i in range(streams):
            stub = station_pb2_grpc.StationServiceStub(channels[i % len(channels)])
            calls.append(stub.WatchStation(spb.WatchStationRequest(interval_seconds=5)))

        async def first(call) -> bool:  # call: a grpc.aio stream call
            try:
                await asyncio.wait_for(call.read(), timeout=120)
                return True
            except Exception:
                return False

        results = await asyncio.gather(*(first(c) for c in calls))
        figures["held"] = sum(results)
        await asyncio.sleep(2.0)
        figures["rss_mb"] = _rss_mb(pid)
        station = station_pb2_grpc.StationServiceStub(control)
        # at the cap: one stream more is refused, the health check still answers
        extra = station.WatchStation(spb.WatchStationRequest())
        try:
            await asyncio.wait_for(extra.read(), timeout=10)
            figures["extra_refused"] = 0
        except grpc.aio.AioRpcError as exc:
            figures["extra_refused"] = int(exc.code() is grpc.StatusCode.RESOURCE_EXHAUSTED)
        health = await health_pb2_grpc.HealthStub(control).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=5)
        figures["health_ok"] = int(health.status in (health_pb2.HealthCheckResponse.SERVING,
                                                     health_pb2.HealthCheckResponse.NOT_SERVING))
        figures["get_station_p99"] = _percentile(await _open_loop(station, 200, 5.0), 0.99)
        # fan-out: with `fanout_streams` streams open (the others closed), a card job's
        # changes as each of them receives them
        for call in calls[fanout_streams:]:
            call.cancel()
        await asyncio.sleep(2.0)
        watched = calls[:fanout_streams]
        received: dict[bytes, list[float]] = {}

        async def listen(call) -> None:
            while True:
                message = await call.read()
                if message is grpc.aio.EOF:
                    return
                received.setdefault(message.SerializeToString(), []).append(
                    time.perf_counter())

        listeners = [asyncio.ensure_future(listen(c)) for c in watched]
        job = issuance_pb2_grpc.IssuanceServiceStub(control)
        spreads = []
        for id_number in _ready_id_numbers():  # one card job each, seconds apart
            before = set(received)
            sent = time.perf_counter()
            with contextlib.suppress(grpc.aio.AioRpcError):
                await job.CreateIssuance(ipb.CreateIssuanceRequest(id_number=id_number),
                                         timeout=30)
            await asyncio.sleep(3.0)
            # the job's first change: the earliest new message most streams received
            fresh = [t for key, t in received.items() if key not in before
                     and len(t) >= 0.99 * len(watched) and min(t) >= sent]
            if fresh:
                first = min(fresh, key=min)
                spreads.append((max(first) - min(first)) * 1000)
        for task in listeners:
            task.cancel()
        figures["fanout_changes"] = len(spreads)
        figures["fanout_p99"] = _percentile(spreads, 0.99) if spreads else float("nan")
    finally:
        for call in calls:
            call.cancel()
        for channel in [*channels, control]:
            await channel.close()
    return figures


async def _open_loop(stub, rate: float, seconds: float) -> list[float]:
    """GetStation sent at `rate` calls/s whatever the answers take; each one's latency."""
    from cardstation.protos.cardstation.v1 import station_pb2 as spb

    latencies: list[float] = []

    async def one() -> None:
        t0 = time.perf_counter()
        await stub.GetStation(spb.GetStationRequest(), timeout=10)
        latencies.append((time.perf_counter() - t0) * 1000)

    tasks = []
    start = time.perf_counter()
    for n in range(int(rate * seconds)):
        delay = start + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one()))
    await asyncio.gather(*tasks, return_exceptions=True)
    return latencies


def _ready_id_numbers() -> list[str]:
    """The applicants `serve --simulate`'s CMS holds ready (its seed is fixed)."""
    from cardstation.simulators.cms.applicants import EXAMPLE_ID_NUMBER, generate_applicants

    return [EXAMPLE_ID_NUMBER, *(a.id_number for a in generate_applicants(6, 1)[:4])]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@contextlib.contextmanager
def served(args: list[str], env: dict[str, str] | None = None,
           entry: str = "cardstation") -> Iterator[tuple[str, int]]:
    """`python -m ENTRY serve ARGS --listen 127.0.0.1:0` in its own process: (address, pid)
    while it runs; `env` the process's environment (default: this one's)."""
    server = subprocess.Popen(
        [sys.executable, "-m", entry, "serve", *args, "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        assert server.stdout is not None
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


def served_simulated(folder: str, authenticated: bool = True,
                     env: dict[str, str] | None = None
                     ) -> contextlib.AbstractContextManager[tuple[str, int]]:
    """`cardstation serve --simulate` in its own process (see `served`). `authenticated`
    False: the benchmark-only server whose interceptor lets every call by."""
    entry = "cardstation" if authenticated else "cardstation.benchmarks.serve_unauthenticated"
    return served(["--simulate", "--speed", "0", "--blank-cards", "6", "--folder", folder],
                  env, entry)


def run(clients: int = 100, seconds: float = 10.0, streams: int = 5000) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="cardstation-grpc-bench-") as tmp, \
            served_simulated(tmp) as (address, pid):
        latencies = asyncio.run(_get_station_load(address, clients, seconds))
        idle_rss = _rss_mb(pid)
        held = asyncio.run(_hold_watch_streams(address, streams, pid))
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
        {"name": "grpc.watch_streams_held", "value": held["held"], "unit": "streams",
         "target": f">= {streams}", "asked": streams,
         "one_more_refused": held["extra_refused"]},
        {"name": "grpc.server_rss_mb", "value": round(held["rss_mb"], 1), "unit": "MB",
         "streams_held": held["held"], "idle_rss_mb": round(idle_rss, 1)},
        {"name": "grpc.rss_kb_per_stream", "unit": "KB", "target": "<= 30",
         "value": round((held["rss_mb"] - idle_rss) * 1024 / max(1, held["held"]), 1)},
        {"name": "grpc.get_station_ms.p99_under_streams", "unit": "ms", "target": "<= 10",
         "value": round(held["get_station_p99"], 2), "rate_per_s": 200, "seconds": 5,
         "streams_held": held["held"]},
        {"name": "grpc.health_ok_at_stream_cap", "value": held["health_ok"], "unit": "bool",
         "target": "1", "streams_held": held["held"]},
        {"name": "grpc.fanout_ms.p99", "value": round(held["fanout_p99"], 1), "unit": "ms",
         "target": "<= 100", "streams": 1000, "changes": held["fanout_changes"],
         "note": "a card job's first change, 5 jobs: from the first of 1,000 streams to "
                 "receive it to the last"},
    ]
