"""What only a live install does: the user and group, ownership, udev and systemd told.

Every step is safe to repeat: systemd-sysusers creates only what is missing, `systemctl
enable` of an enabled unit changes nothing, and systemd and udev are asked to reload only when
their files changed. Commands go through `run` so tests can watch them instead of running them.
"""

from __future__ import annotations

import grp
import os
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from cardstation.install.files import (
    CONFIG_DIR,
    SYSUSERS_PATH,
    UDEV_RULE_PATH,
    UNIT_PATH,
    USER,
)

Runner = Callable[[Sequence[str]], int]
SYSTEMD_RUNNING = Path("/run/systemd/system")  # present only when systemd is PID 1


def run_command(argv: Sequence[str]) -> int:
    """Run `argv`, its output going to the installer's own; the exit code."""
    return subprocess.run(list(argv), check=False).returncode


class InstallStepFailed(RuntimeError):
    pass


def commands(changed: set[str], systemd_running: bool) -> list[list[str]]:
    """The commands a live install runs, given the station paths whose files changed."""
    steps = [["systemd-sysusers", SYSUSERS_PATH]]
    if UDEV_RULE_PATH in changed:
        steps += [["udevadm", "control", "--reload"],
                  # a printer plugged in already gets its group and loses usblp now
                  ["udevadm", "trigger", "--action=add", "--subsystem-match=usb",
                   "--attr-match=idVendor=0d16"]]
    if systemd_running:
        if UNIT_PATH in changed:
            steps.append(["systemctl", "daemon-reload"])
        steps += [["systemctl", "enable", "--now", "pcscd.socket"],
                  ["systemctl", "enable", "cardstation.service"]]
    return steps


def systemd_commands_later() -> list[str]:
    """What to run once systemd runs, when the install happened without it (a chroot)."""
    return ["systemctl daemon-reload", "systemctl enable --now pcscd.socket",
            "systemctl enable cardstation.service"]


def apply(changed: set[str], run: Runner | None = None,
          systemd_running: bool | None = None, say: Callable[[str], None] = print) -> None:
    """Run the live steps, then give the configuration folder to the service's group."""
    run = run or run_command
    if systemd_running is None:
        systemd_running = SYSTEMD_RUNNING.is_dir()
    for argv in commands(changed, systemd_running):
        say("run " + " ".join(argv))
        code = run(argv)
        if code != 0:
            raise InstallStepFailed(f"`{' '.join(argv)}` exited {code}; fix what it reports "
                                    "and run `cardstation install` again (it is safe to repeat)")
    if not systemd_running:
        say("systemd is not running here: once it is, run: "
            + "; ".join(systemd_commands_later()))
    give_config_dir_to_group()


def give_config_dir_to_group(path: str = CONFIG_DIR, group: str = USER) -> None:
    """root:cardstation 0750, so the service reads its configuration and key files and no
    other user does (the server refuses a TLS key others can read)."""
    gid = grp.getgrnam(group).gr_gid
    if os.stat(path).st_gid != gid:
        os.chown(path, 0, gid)
