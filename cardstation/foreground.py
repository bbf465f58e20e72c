"""Run in the foreground until SIGINT or SIGTERM: the one loop every long-running command uses
(`serve`, and the simulators under `sim`)."""

from __future__ import annotations

import signal
import threading


def wait_for_stop_signal() -> None:
    """Block until SIGINT/SIGTERM (or Ctrl-C). Outside the main thread (embedded use) the
    handlers cannot be installed; then only KeyboardInterrupt ends the wait."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(sig, lambda *_: stop.set())
        except ValueError:
            pass
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
