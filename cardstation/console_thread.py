"""The console served from a thread of this process, for the benchmarks and the browser tests
(`cardstation console` itself runs uvicorn in the foreground)."""

from __future__ import annotations

import threading
import time

import uvicorn

from cardstation.console.app import create_app
from cardstation.console.client import StationApi

#: Debian's chromium, and the flags a root, network-less machine needs (no sandbox, no
#: background traffic): for the browser tests and the console benchmark.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


class ConsoleThread:
    """The console for the gRPC server at `target`, on a free loopback port until `stop()`."""

    def __init__(self, target: str, start_timeout: float = 10.0) -> None:
        self.api = StationApi(target)
        self.server = uvicorn.Server(uvicorn.Config(create_app(self.api), host="127.0.0.1",
                                                    port=0, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True, name="console")
        self.thread.start()
        deadline = time.monotonic() + start_timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the console did not start")
            time.sleep(0.05)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.api.close()
