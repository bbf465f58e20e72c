"""`cardstation install`: lay down the station's service, udev rule and user (run as root).

  cardstation install [--exec PATH] [--dry-run] [--root DIR]

Writes, from the templates in cardstation/install/templates/, each only if it differs:
  /etc/systemd/system/cardstation.service          `cardstation serve` as user cardstation
  /etc/udev/rules.d/70-cardstation-printer.rules   the CS-220e to group cardstation-printer,
                                                   usblp unbound from it
  /etc/sysusers.d/cardstation.conf                 the user and the group
and the folder /etc/cardstation (0750). Then it creates the user and group if missing, reloads
udev and systemd when their files changed, enables pcscd.socket and cardstation.service.
Each path is printed with what happened to it; a second run changes nothing. --dry-run prints
what would be written and run, and writes nothing. --root DIR writes into a staging root (tests,
packagers) and runs nothing: no user is created, systemctl and udevadm are not called.
It never installs or touches vpcd, and refuses a live install while vpcd is present.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

# ProtectHome= and PrivateTmp= hide these from the service: a server installed there would not
# start, so the installer refuses rather than writing a unit that fails at boot.
HIDDEN_FROM_SERVICE = ("/home", "/root", "/run/user", "/tmp", "/var/tmp")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("install", help="install the systemd unit, udev rule and "
                                   "user of a station (as root)")
    parser.add_argument("--exec", dest="exec_path",
                        help="the cardstation program the service runs (default: the one "
                        "running this command)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print what would be written and run; change nothing")
    parser.add_argument("--root", help="write into this staging root; run no command")
    parser.set_defaults(func=run)


def default_exec() -> str:
    beside = Path(sys.executable).parent / "cardstation"
    if beside.is_file():
        return str(beside)
    return shutil.which("cardstation") or str(beside)


def exec_problem(exec_path: str, must_exist: bool) -> str | None:
    """Why the service could not run `exec_path`, or None."""
    path = Path(exec_path)
    if not path.is_absolute():
        return f"--exec {exec_path} is not an absolute path; systemd needs one"
    if any(exec_path == d or exec_path.startswith(d + "/") for d in HIDDEN_FROM_SERVICE):
        return (f"{exec_path} is under a folder the hardened service cannot see "
                f"({', '.join(HIDDEN_FROM_SERVICE)}); install the station with `make install` "
                "(it puts it in /opt/cardstation/venv) or give --exec a path outside them")
    if must_exist and not os.access(path, os.X_OK):
        return f"{exec_path} is not an executable program; give the right one with --exec"
    return None


def _vpcd_problem() -> str | None:
    from cardstation.vpcd_check import check_vpcd

    errors = [f.message for f in check_vpcd(real_station=True) if f.severity == "error"]
    return "; ".join(errors) or None


def run(args: argparse.Namespace) -> int:
    from cardstation.install import files, system

    live = args.root is None
    root = Path(args.root or "/")
    exec_path = args.exec_path or default_exec()
    problem = exec_problem(exec_path, must_exist=live)
    if problem is None and live:
        if os.geteuid() != 0 and not args.dry_run:
            problem = "a station install needs root: run it with sudo (or use --root DIR)"
        else:
            problem = _vpcd_problem()
    if problem:
        print(f"install: {problem}", file=sys.stderr)
        return 1
    if not live and not os.access(exec_path, os.X_OK):
        print(f"install: note: {exec_path} is not a program on this machine; the unit will run "
              "it, so it must be there on the station", file=sys.stderr)

    verb = ("would write", "unchanged") if args.dry_run else ("written", "unchanged")
    changed: set[str] = set()
    for planned in files.planned_files(exec_path):
        outcome = files.write_file(root, planned, args.dry_run)
        if outcome.changed:
            changed.add(planned.path)
        print(f"{verb[0] if outcome.changed else verb[1]} {outcome.path}")
    folder = files.make_dir(root, files.CONFIG_DIR, 0o750, args.dry_run)
    print(f"{('would create' if args.dry_run else 'created') if folder.changed else 'unchanged'}"
          f" {folder.path}/")

    if not live or args.dry_run:
        why = "staging root" if not live else "dry run"
        for argv in system.commands(changed, systemd_running=True):
            print(f"not run ({why}): {' '.join(argv)}")
        return 0
    try:
        system.apply(changed)
    except (system.InstallStepFailed, OSError, KeyError) as exc:
        print(f"install: {exc}", file=sys.stderr)
        return 1
    if not Path(files.CONFIG).exists():
        print(f"next: put the station's configuration in {files.CONFIG} (data_dir = "
              "\"/var/lib/cardstation\"), then: systemctl start cardstation")
    return 0
