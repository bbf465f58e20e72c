"""The files of a station install, rendered from templates/ and written only when they differ."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

USER = "cardstation"
# The printer's device node is given to this group rather than to the user: whoever needs the
# printer outside the service (a technician's test) can be put in it without becoming the user.
DEVICE_GROUP = "cardstation-printer"
CONFIG = "/etc/cardstation/cardstation.toml"
CONFIG_DIR = "/etc/cardstation"
UNIT_PATH = "/etc/systemd/system/cardstation.service"
UDEV_RULE_PATH = "/etc/udev/rules.d/70-cardstation-printer.rules"
SYSUSERS_PATH = "/etc/sysusers.d/cardstation.conf"


@dataclass(frozen=True)
class PlannedFile:
    path: str  # where it goes on the station (absolute)
    content: str
    mode: int


@dataclass(frozen=True)
class Outcome:
    path: Path  # where it was (or would be) written, under the root
    changed: bool


def _template(name: str) -> Template:
    text = resources.files("cardstation.install").joinpath("templates", name)
    return Template(text.read_text(encoding="utf-8"))


def planned_files(exec_path: str) -> list[PlannedFile]:
    """The unit, the udev rule and the sysusers entry for a server run as `exec_path`."""
    values = {"exec": exec_path, "config": CONFIG, "user": USER, "device_group": DEVICE_GROUP}
    sources = ((UNIT_PATH, "cardstation.service"), (UDEV_RULE_PATH, "70-cardstation-printer.rules"),
               (SYSUSERS_PATH, "cardstation.sysusers"))
    return [PlannedFile(path, _template(name).substitute(values), 0o644)
            for path, name in sources]


def under(root: Path, path: str) -> Path:
    """`path` (absolute on the station) inside the staging root `root`."""
    return root / path.lstrip("/")


def _same(target: Path, content: str, mode: int) -> bool:
    try:
        return (target.read_text(encoding="utf-8") == content
                and (target.stat().st_mode & 0o7777) == mode)
    except (OSError, UnicodeDecodeError):
        return False


def write_file(root: Path, planned: PlannedFile, dry_run: bool) -> Outcome:
    """Write `planned` under `root` unless it is there already with that content and mode.

    The new content goes to a temporary file in the same folder and is renamed over the old
    one, so udev or systemd never read half a file."""
    target = under(root, planned.path)
    if _same(target, planned.content, planned.mode):
        return Outcome(target, False)
    if not dry_run:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(planned.content)
            os.chmod(tmp, planned.mode)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return Outcome(target, True)


def make_dir(root: Path, path: str, mode: int, dry_run: bool) -> Outcome:
    """Create the folder `path` under `root` with `mode` (mode corrected if it differs)."""
    target = under(root, path)
    if target.is_dir() and (target.stat().st_mode & 0o7777) == mode:
        return Outcome(target, False)
    if not dry_run:
        target.mkdir(parents=True, exist_ok=True)
        os.chmod(target, mode)
    return Outcome(target, True)
