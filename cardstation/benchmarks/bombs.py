"""Hostile-input figure (issue 17): the server's resident memory after photo bombs.

`server.rss_mb_after_bombs`: `cardstation serve --simulate` in its own process is sent rounds
of 8 concurrent PreviewCard calls, each pushing an application whose photo header claims
12000 x 12000 px (a few KB that would decode to 432 MB); the figure is the server's RSS after
the last round, with the idle RSS beside it. Every bomb must be refused (INVALID_ARGUMENT,
PHOTO_TOO_LARGE) without being decoded, so the figure stays near the idle one.
"""

from __future__ import annotations

import struct
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from cardstation.benchmarks.grpc_api import _rss_mb, served_simulated


def header_bomb(photo: bytes, width: int = 12_000, height: int = 12_000) -> bytes:
    """`photo` (a JPEG) with its frame header claiming width x height."""
    data = bytearray(photo)
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        at = data.find(marker)
        if at > 0:
            data[at + 5:at + 9] = struct.pack(">HH", height, width)
            return bytes(data)
    raise ValueError("no JPEG frame header")


def run(concurrent: int = 8, rounds: int = 3) -> list[dict]:
    import grpc

    from cardstation.protos.cardstation.v1 import issuance_pb2 as ipb
    from cardstation.protos.cardstation.v1 import issuance_pb2_grpc
    from cardstation.server.errors import error_info
    from cardstation.server.servicers import application_to_proto
    from cardstation.simulators.cms.applicants import example_applicant

    application = application_to_proto(example_applicant())
    application.photo_jpeg = header_bomb(application.photo_jpeg)
    request = ipb.PreviewCardRequest(application=application)
    refused = answered = 0
    with tempfile.TemporaryDirectory(prefix="cardstation-bomb-bench-") as tmp, \
            served_simulated(tmp) as (address, pid):
        idle = _rss_mb(pid)
        with grpc.insecure_channel(address) as channel:
            stub = issuance_pb2_grpc.IssuanceServiceStub(channel)

            def send(_: int) -> str:
                try:
                    stub.PreviewCard(request, timeout=60)
                    return "answered"
                except grpc.RpcError as exc:
                    info = error_info(exc)
                    return info.reason if info else exc.code().name

            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=concurrent) as pool:
                for _ in range(rounds):
                    results = list(pool.map(send, range(concurrent)))
                    refused += results.count("PHOTO_TOO_LARGE")
                    answered += len(results) - results.count("PHOTO_TOO_LARGE")
            seconds = time.perf_counter() - started
        time.sleep(0.5)
        after = _rss_mb(pid)
    return [{"name": "server.rss_mb_after_bombs", "value": round(after, 1), "unit": "MB",
             "idle_rss_mb": round(idle, 1), "bombs": concurrent * rounds,
             "concurrent": concurrent, "refused": refused, "not_refused": answered,
             "seconds": round(seconds, 2),
             "bomb": "JPEG header claiming 12000x12000 px (432 MB decoded), PreviewCard",
             "server": "serve --simulate, own process"}]
