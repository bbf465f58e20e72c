"""`cardstation console`: the operators' web console, a client of the station's gRPC server.

  cardstation console [--listen 127.0.0.1:8080] [--server 127.0.0.1:50051]
                      [--ca F --cert F --key F] [--tls-cert F --tls-key F]

Off loopback the console needs TLS (--tls-cert/--tls-key), like `serve`. Operators log in with
their own token; every action is a gRPC call made with it.
"""

from __future__ import annotations

import argparse
import os
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("console", help="serve the operators' web console")
    parser.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT to serve on")
    parser.add_argument("--server", default=os.environ.get("CARDSTATION_SERVER",
                                                           "127.0.0.1:50051"),
                        help="the station's gRPC server")
    parser.add_argument("--ca", help="CA certificate (PEM) of the gRPC server: enables TLS")
    parser.add_argument("--cert", help="client certificate (PEM) for mTLS to the server")
    parser.add_argument("--key", help="client key (PEM) for mTLS to the server")
    parser.add_argument("--tls-cert", help="certificate (PEM) the console serves HTTPS with")
    parser.add_argument("--tls-key", help="its key (PEM)")
    parser.set_defaults(func=run)


def grpc_credentials(ca: str | None, cert: str | None, key: str | None):
    import grpc

    if not ca:
        return None

    def read(path: str | None) -> bytes | None:
        return open(path, "rb").read() if path else None

    return grpc.ssl_channel_credentials(read(ca), read(key), read(cert))


def run(args: argparse.Namespace) -> int:
    from cardstation.console.security import InsecureListen, check_listen

    host, _, port = args.listen.rpartition(":")
    tls = bool(args.tls_cert and args.tls_key)
    try:
        check_listen(host or "127.0.0.1", tls)
        port_number = int(port)
    except (InsecureListen, ValueError) as exc:
        print(f"console: {exc}", file=sys.stderr)
        return 2
    serve_console(host or "127.0.0.1", port_number, args.server,
                  grpc_credentials(args.ca, args.cert, args.key), args.tls_cert, args.tls_key)
    return 0


def serve_console(host: str, port: int, server: str, credentials=None,
                  tls_cert: str | None = None, tls_key: str | None = None) -> None:
    """Serve until SIGINT/SIGTERM (uvicorn's own handling)."""
    import uvicorn

    from cardstation.console.app import create_app
    from cardstation.console.client import StationApi

    api = StationApi(server, credentials)
    app = create_app(api, secure_cookie=bool(tls_cert))
    print(f"console on {'https' if tls_cert else 'http'}://{host}:{port}/ (station server "
          f"{server})", flush=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", ssl_certfile=tls_cert,
                    ssl_keyfile=tls_key)
    finally:
        api.close()
