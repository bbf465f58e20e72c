"""Find or start the PC/SC daemon (pcscd) that the station's readers, real or virtual, live behind.

`python -m cardstation.pcscd ensure` is what `make test`, `make demo` and the test fixtures call:
it starts pcscd when no daemon answers and waits until its socket and the vpcd ports are up.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

PCSCD_SOCKET = Path("/run/pcscd/pcscd.comm")
VPCD_PORTS = (35963, 35964, 35965, 35966, 35967, 35968)


class PcscdUnavailable(RuntimeError):
    """pcscd is not installed or would not start."""


def _socket_answers() -> bool:
    if not PCSCD_SOCKET.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(PCSCD_SOCKET))
        except OSError:
            return False
    return True


def vpcd_port_open(port: int) -> bool:
    """True when a vpcd slot listens on `port` (pcscd loaded the vpcd driver).

    Read from /proc/net/tcp rather than by connecting: vpcd takes any connection as a card
    being inserted, so a probe would occupy the slot.
    """
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state = fields[1], fields[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A = LISTEN
                return True
    return False


def is_running() -> bool:
    return _socket_answers()


def ensure_running(timeout: float = 10.0) -> None:
    """Start pcscd if it is not answering, then wait for the vpcd slots.

    Raises PcscdUnavailable with the reason (not installed, no permission, no vpcd driver).
    """
    if not _socket_answers():
        binary = shutil.which("pcscd") or "/usr/sbin/pcscd"
        if not os.path.exists(binary):
            raise PcscdUnavailable("pcscd is not installed: run `make setup` (apt package pcscd)")
        cmd = [binary] if os.geteuid() == 0 else ["sudo", "-n", binary]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise PcscdUnavailable(f"pcscd would not start: {result.stderr.strip()}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _socket_answers() and vpcd_port_open(VPCD_PORTS[0]):
            return
        time.sleep(0.1)
    if not _socket_answers():
        raise PcscdUnavailable(f"pcscd did not open {PCSCD_SOCKET} within {timeout:.0f} s")
    raise PcscdUnavailable(
        "pcscd runs but no vpcd slot listens on port 35963: is vsmartcard-vpcd installed "
        "(`make setup`)? pcscd must be restarted after installing it"
    )


def main(argv: list[str]) -> int:
    if argv[:1] != ["ensure"]:
        print("usage: python -m cardstation.pcscd ensure", file=sys.stderr)
        return 2
    try:
        ensure_running()
    except PcscdUnavailable as exc:
        print(f"pcscd: {exc}", file=sys.stderr)
        return 1
    print("pcscd: running, vpcd slots listening")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
