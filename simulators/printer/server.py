"""The simulated CS-220e over TCP: the device protocol on one port, JSON control on another.

`cardstation sim printer --listen 127.0.0.1:9100 --speed 0.1 --control 127.0.0.1:9101
--output DIR` (the CLI calls `add_arguments` and `run`). The first stdout line is the device
address (host:port, the driver's URL is socket://host:port); a second line names the control
address when there is one. Pulling the simulated printer cable closes every device connection
and refuses new ones until it is plugged back.
"""

from __future__ import annotations

import argparse
import json
import logging
import socket
import socketserver
import sys
import threading
from pathlib import Path
from typing import Any

from cardstation.simulators import options
from cardstation.simulators.foreground import catch_stop_signals, wait_for_stop_signal
from cardstation.simulators.printer import control
from cardstation.simulators.printer.model import PrinterModel
from cardstation.simulators.printer.protocol import Session

log = logging.getLogger(__name__)


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host or "127.0.0.1", int(port)


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    block_on_close = False


class PrinterSimServer:
    """Device and control listeners around one model; usable in process (tests) or from run()."""

    def __init__(
        self,
        model: PrinterModel,
        listen: str = "127.0.0.1:0",
        control_listen: str | None = None,
    ) -> None:
        self.model = model
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        self._device = _Server(_split(listen), self._device_handler())
        self._control = (
            _Server(_split(control_listen), self._control_handler()) if control_listen else None
        )
        self._threads: list[threading.Thread] = []
        model.add_plug_listener(self._on_plug)

    @property
    def address(self) -> str:
        host, port = self._device.server_address[:2]
        return f"{host}:{port}"

    @property
    def url(self) -> str:
        return f"socket://{self.address}"

    @property
    def control_address(self) -> str | None:
        if self._control is None:
            return None
        host, port = self._control.server_address[:2]
        return f"{host}:{port}"

    def start(self) -> PrinterSimServer:
        for srv in (self._device, self._control):
            if srv is not None:
                t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1},
                                     daemon=True, name="printer-sim-server")  # fmt: skip
                t.start()
                self._threads.append(t)
        return self

    def close(self) -> None:
        for srv in (self._device, self._control):
            if srv is not None:
                srv.shutdown()
                srv.server_close()
        self._drop_connections()
        self.model.close()

    def __enter__(self) -> PrinterSimServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- cable -------------------------------------------------------------------------------
    def _on_plug(self, plugged: bool) -> None:
        if not plugged:
            self._drop_connections()

    def _drop_connections(self) -> None:
        with self._conn_lock:
            conns = list(self._connections)
            self._connections.clear()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the peer

    # -- handlers ----------------------------------------------------------------------------
    def _device_handler(self) -> type[socketserver.BaseRequestHandler]:
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                conn: socket.socket = self.request
                if not outer.model.printer_connected:
                    return  # cable pulled: the connection just dies
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with outer._conn_lock:
                    outer._connections.add(conn)
                session = Session(outer.model)
                try:
                    while True:
                        data = conn.recv(1 << 16)
                        if not data or not outer.model.printer_connected:
                            break
                        session.feed(data)
                        out = session.take_output()
                        if out:
                            conn.sendall(out)
                except OSError as exc:
                    log.info("printer simulator connection ended: %s", exc)
                finally:
                    session.close()
                    with outer._conn_lock:
                        outer._connections.discard(conn)

        return Handler

    def _control_handler(self) -> type[socketserver.StreamRequestHandler]:
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                for line in self.rfile:
                    if not line.strip():
                        continue
                    try:
                        request = json.loads(line)
                        if not isinstance(request, dict):
                            raise ValueError("a request is a JSON object")
                        reply: dict[str, Any] = control.handle(outer.model, request)
                    except ValueError as exc:
                        reply = {"ok": False, "error": f"bad request: {exc}"}
                    self.wfile.write(json.dumps(reply).encode() + b"\n")
                    self.wfile.flush()

        return Handler


# The options live where `cardstation --help` reads them without loading the simulator.
add_arguments = options.printer_arguments


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted. Prints the device address on the first stdout line."""
    model = PrinterModel(speed=args.speed, output_dir=Path(args.output) if args.output else None)
    model.load_cards(args.cards, args.orientation)
    try:
        server = PrinterSimServer(model, args.listen, args.control).start()
    except OSError as exc:
        print(f"cannot listen: {exc}", file=sys.stderr)
        return 1
    stop = catch_stop_signals()  # before the address: a caller may signal as soon as it reads it
    print(server.address, flush=True)
    if server.control_address:
        print(f"control {server.control_address}", flush=True)
    wait_for_stop_signal(stop)
    server.close()
    return 0
