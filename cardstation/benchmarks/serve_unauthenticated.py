"""`cardstation serve` with authentication replaced by a pass-through, FOR THE BENCHMARK ONLY:
the yardstick the interceptor's cost is measured against (`grpc.get_station_auth_ratio`).

    python -m cardstation.benchmarks.serve_unauthenticated serve --simulate --listen 127.0.0.1:0

It is reachable only this way (no option of the station turns authentication off), and the
benchmark runs it on loopback with simulated devices.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import grpc


class PassThrough(grpc.ServerInterceptor):
    """Takes the interceptor's arguments and lets every call through unchecked."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        return continuation(handler_call_details)


def main(argv: list[str]) -> int:
    from cardstation import cli
    from cardstation.server import auth

    auth.AuthInterceptor = PassThrough  # type: ignore[misc, assignment]
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
