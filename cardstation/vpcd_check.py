"""Is a virtual reader (vpcd) loaded, and who can reach it? A check for `cardstation doctor`.

vpcd, the reader driver the simulators use, gives pcscd a reader whose "card" is whoever
connects to its TCP port. Each vpcd entry in pcscd's reader configuration (/etc/reader.conf.d)
has DEVICENAME HOST:PORT and two slots, PORT and PORT+1. With HOST "/dev/null" (the stock entry
and ours) vpcd listens on every interface: the Debian 12 build (vsmartcard-vpcd 3.3, vpcd 0.8)
binds INADDR_ANY with no option for an address. Any other HOST makes vpcd dial out to the card
instead, but in that build the dial-out mode aborts pcscd at the first presence poll with no
card (the socket checks treat -1 as a listening socket and pass it to FD_SET). So vpcd cannot be
limited to loopback; see docs/vpcd.md. Hence: a real station must not load vpcd at all
(`make station-setup` does not install it and refuses while it is there), and a development or
simulator machine that has it is reported, with its ports, so it is kept off untrusted networks.

`check_vpcd` reads the reader configuration and the kernel's listening sockets; it names every
vpcd entry that listens beyond loopback or dials a non-loopback host, and on a real station
every vpcd entry at all. `python -m cardstation.vpcd_check [--real-station]` prints them.
"""

from __future__ import annotations

import ipaddress
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

CONF_DIR = Path("/etc/reader.conf.d")
TCP_TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))
LISTEN_MARKER = "/dev/null"  # vpcd's DEVICENAME host meaning "listen on every interface"
SLOTS = 2  # slots per vpcd entry
REMEDY_STATION = ("a real station must not load a virtual reader: `apt-get purge "
                  "vsmartcard-vpcd`, remove /etc/reader.conf.d/cardstation-vpcd-desk, "
                  "/etc/reader.conf.d/cardstation-vpcd-lanes and "
                  "/usr/lib/pcsc/drivers/serial/libifdvpcd-{desk,lanes}.so, restart pcscd")
REMEDY_DEV = ("vpcd cannot be bound to loopback (docs/vpcd.md): keep this machine off untrusted "
              "networks or firewall these ports; never on a station")


@dataclass(frozen=True)
class VpcdEntry:
    """One vpcd reader entry. `host` None means vpcd listens on every interface."""

    file: Path
    name: str
    host: str | None
    port: int

    @property
    def ports(self) -> tuple[int, ...]:
        return tuple(self.port + slot for slot in range(SLOTS))


@dataclass(frozen=True)
class Finding:
    """One problem: `severity` "error" (a real station) or "warning" (a simulator machine)."""

    severity: str
    message: str


def _entries_of(text: str) -> list[dict[str, str]]:
    entries: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        try:
            words = shlex.split(line)
        except ValueError:
            continue
        if len(words) < 2:
            continue
        key, value = words[0].upper(), " ".join(words[1:])
        if key == "FRIENDLYNAME" and current:
            entries.append(current)
            current = {}
        current[key] = value
    if current:
        entries.append(current)
    return entries


def _number(text: str) -> int | None:
    try:
        return int(text, 0)
    except ValueError:
        return None


def vpcd_entries(folder: Path = CONF_DIR) -> list[VpcdEntry]:
    """The vpcd entries (LIBPATH naming libifdvpcd) of pcscd's reader configuration."""
    found: list[VpcdEntry] = []
    try:
        files = sorted(p for p in folder.iterdir() if p.is_file())
    except OSError:
        return found
    for path in files:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for entry in _entries_of(text):
            if "ifdvpcd" not in entry.get("LIBPATH", ""):
                continue
            host, sep, port_text = entry.get("DEVICENAME", "").rpartition(":")
            port = (_number(port_text) if sep else None) or _number(entry.get("CHANNELID", ""))
            found.append(VpcdEntry(path, entry.get("FRIENDLYNAME", "?"),
                                   None if not sep or host == LISTEN_MARKER else host,
                                   port or 0x8C7B))
    return found


def _address(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    raw = bytes.fromhex(hex_address)
    if len(raw) == 4:
        return ipaddress.IPv4Address(raw[::-1])
    # /proc/net/tcp6: four 32-bit words, each in host (little-endian) order
    return ipaddress.IPv6Address(b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))


def listening(ports: set[int],
              tables: tuple[Path, ...] = TCP_TABLES) -> dict[int, set[str]]:
    """Addresses each of `ports` is listening on now (from the kernel's TCP tables)."""
    found: dict[int, set[str]] = {}
    for table in tables:
        try:
            lines = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 4 or fields[3] != "0A":  # 0A = LISTEN
                continue
            address, _, port_hex = fields[1].rpartition(":")
            port = int(port_hex, 16)
            if port in ports:
                found.setdefault(port, set()).add(str(_address(address)))
    return found


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def check_vpcd(real_station: bool, folder: Path = CONF_DIR,
               tables: tuple[Path, ...] = TCP_TABLES) -> list[Finding]:
    """What is wrong with the vpcd set-up of this machine (empty: nothing)."""
    severity, remedy = ("error", REMEDY_STATION) if real_station else ("warning", REMEDY_DEV)
    entries = vpcd_entries(folder)
    live = listening({p for e in entries for p in e.ports}, tables)
    findings: list[Finding] = []
    for entry in entries:
        first, last = entry.ports[0], entry.ports[-1]
        where = f"vpcd reader {entry.name!r} ({entry.file}, ports {first}-{last})"
        exposed = sorted({a for p in entry.ports for a in live.get(p, ())
                          if not _is_loopback(a)})
        if entry.host is None:
            now = f"; listening now on {', '.join(exposed)}" if exposed else ""
            findings.append(Finding(severity, f"{where} listens on every interface: anyone who "
                                    f"can reach this machine can present a card to pcscd{now}; "
                                    f"{remedy}"))
        elif not _is_loopback(entry.host):
            findings.append(Finding(severity, f"{where} takes its card from {entry.host}, "
                                    f"another machine; {remedy}"))
        elif real_station:
            findings.append(Finding(severity, f"{where} is a virtual reader; {remedy}"))
    return findings


def main(argv: list[str]) -> int:
    findings = check_vpcd(real_station="--real-station" in argv)
    for finding in findings:
        print(f"{finding.severity}: {finding.message}")
    if not findings:
        print("vpcd: no virtual reader reachable beyond loopback")
    return 1 if any(f.severity == "error" for f in findings) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
