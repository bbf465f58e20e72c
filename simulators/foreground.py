"""Run in the foreground until SIGINT or SIGTERM: the one loop every long-running command uses
(`serve`, and the simulators under `sim`). It lives with the simulators, the lower of its two
users (the composition root may import them; they may not import the root).

Install the handlers (`catch_stop_signals`) before printing the address a caller waits for: a
caller that reads the address and sends SIGTERM at once must not kill the process mid-start."""

from __future__ import annotations

import signal
import threading


def catch_stop_signals() -> threading.Event:
    """SIGINT/SIGTERM set the returned event from now on. Outside the main thread (embedded
    use) the handlers cannot be installed; then only KeyboardInterrupt ends the wait."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(sig, lambda *_: stop.set())
        except ValueError:
            pass
    return stop


def wait_for_stop_signal(stop: threading.Event | None = None) -> None:
    """Block until SIGINT/SIGTERM (or Ctrl-C): on `stop` from catch_stop_signals(), or on
    handlers installed now."""
    if stop is None:
        stop = catch_stop_signals()
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
