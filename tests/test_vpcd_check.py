"""vpcd only where the simulators need it, and reported wherever it is reachable off loopback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from cardstation.vpcd_check import check_vpcd, listening, vpcd_entries

STOCK = '''# the entry the vsmartcard-vpcd package installs
FRIENDLYNAME "Virtual PCD"
DEVICENAME   /dev/null:0x8C7B
LIBPATH      /usr/lib/pcsc/drivers/serial/libifdvpcd.so
CHANNELID    0x8C7B
'''
DESK = (Path(__file__).parent.parent / "simulators" / "vpcd" / "reader.conf").read_text()
CCID = '''FRIENDLYNAME "GemPCTwin serial"
DEVICENAME   /dev/ttyS0
LIBPATH      /usr/lib/pcsc/drivers/serial/libccidtwin.so
'''


def conf(tmp_path: Path, **files: str) -> Path:
    folder = tmp_path / "reader.conf.d"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def tcp_table(tmp_path: Path, *listeners: tuple[str, int]) -> tuple[Path, ...]:
    """A /proc/net/tcp with LISTEN rows for (IPv4 address, port)."""
    rows = ["  sl  local_address rem_address   st"]
    for i, (address, port) in enumerate(listeners):
        hexaddr = "".join(f"{int(b):02X}" for b in reversed(address.split(".")))
        rows.append(f"   {i}: {hexaddr}:{port:04X} 00000000:0000 0A 0")
    rows.append(f"   9: 0100007F:{35963:04X} 0100007F:C000 01 0")  # an established connection
    path = tmp_path / "tcp"
    path.write_text("\n".join(rows) + "\n")
    return (path,)


def test_entries_are_read_with_their_ports(tmp_path: Path) -> None:
    folder = conf(tmp_path, vpcd=STOCK, **{"cardstation-vpcd-desk": DESK, "ccid": CCID})
    entries = {e.name: e for e in vpcd_entries(folder)}
    assert set(entries) == {"Virtual PCD", "Virtual PCD Desk"}  # not the serial CCID reader
    assert entries["Virtual PCD"].ports == (35963, 35964)
    assert entries["Virtual PCD Desk"].ports == (35965, 35966)
    assert entries["Virtual PCD"].host is None  # /dev/null: listens on every interface


def test_listening_entries_are_flagged_with_their_live_sockets(tmp_path: Path) -> None:
    folder = conf(tmp_path, vpcd=STOCK)
    tables = tcp_table(tmp_path, ("0.0.0.0", 35963), ("0.0.0.0", 35964), ("127.0.0.1", 8080))
    findings = check_vpcd(real_station=False, folder=folder, tables=tables)
    assert [f.severity for f in findings] == ["warning"]
    text = findings[0].message
    assert "35963-35964" in text and "every interface" in text
    assert "listening now on 0.0.0.0" in text and "docs/vpcd.md" in text


def test_on_a_real_station_any_vpcd_is_an_error_with_the_remedy(tmp_path: Path) -> None:
    loopback = STOCK.replace("/dev/null:", "127.0.0.1:")
    folder = conf(tmp_path, vpcd=loopback)
    assert check_vpcd(real_station=False, folder=folder, tables=()) == []
    findings = check_vpcd(real_station=True, folder=folder, tables=())
    assert [f.severity for f in findings] == ["error"]
    assert "apt-get purge vsmartcard-vpcd" in findings[0].message


def test_a_card_from_another_machine_is_flagged(tmp_path: Path) -> None:
    folder = conf(tmp_path, vpcd=STOCK.replace("/dev/null:", "192.0.2.7:"))
    findings = check_vpcd(real_station=False, folder=folder, tables=())
    assert len(findings) == 1 and "192.0.2.7" in findings[0].message


def test_no_vpcd_nothing_to_report(tmp_path: Path) -> None:
    assert check_vpcd(real_station=True, folder=conf(tmp_path, ccid=CCID), tables=()) == []
    assert check_vpcd(real_station=True, folder=tmp_path / "absent", tables=()) == []


def test_station_setup_does_not_install_vpcd() -> None:
    root = Path(__file__).parent.parent
    plan = subprocess.run(["make", "-n", "-s", "station-setup"], cwd=root, capture_output=True,
                          text=True, timeout=60).stdout
    installs = [line for line in plan.splitlines() if "apt-get install" in line
                or "install -m" in line]
    assert installs and not any("vsmartcard-vpcd" in line for line in installs)
    assert not any("reader.conf.d" in line for line in installs)
    assert "no-virtual-readers" in (root / "Makefile").read_text()
    dev = subprocess.run(["make", "-n", "-s", "setup"], cwd=root, capture_output=True,
                         text=True, timeout=60).stdout
    assert "vsmartcard-vpcd" in dev  # the simulators' machines keep it


@pytest.mark.pcscd
def test_vpcd_here_listens_beyond_loopback_and_is_reported(pcsc_context: object) -> None:
    # The proof that this vpcd cannot be limited to loopback, kept as a test: its slots are
    # bound to the wildcard address (reachable from any interface), and the check says so.
    # If a vpcd build ever binds loopback only, this fails: then install that and drop the
    # warning (docs/vpcd.md).
    entries = vpcd_entries()
    assert entries, "no vpcd entry in /etc/reader.conf.d"
    live = listening({p for e in entries for p in e.ports})
    assert live.get(35963) == {"0.0.0.0"}
    findings = check_vpcd(real_station=False)
    assert any("35963-35964" in f.message and "every interface" in f.message
               for f in findings)
    assert all(f.severity == "warning" for f in findings)
    assert any(f.severity == "error" for f in check_vpcd(real_station=True))
