"""`cardstation --version` and `--help` stay cheap: the parser is built without importing grpc,
the simulators, the imaging or the crypto library (each command imports them when it runs)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cardstation.drivers.pinpad.pinblock import TEST_PINPAD_KEK
from cardstation.simulators import options

# Top-level packages and cardstation subpackages that the parser must not load.
HEAVY_ROOTS = ("grpc", "grpc_health", "grpc_reflection", "google", "PIL", "cryptography")
HEAVY_PREFIXES = ("cardstation.simulators.", "cardstation.server", "cardstation.drivers",
                  "cardstation.personalization")
ALLOWED = {"cardstation.simulators.options"}


def imported_modules(*args: str) -> set[str]:
    """The modules `python -X importtime -m cardstation <args>` imports."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "cardstation", *args],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rsplit("|", 1)[1].strip())
    assert "cardstation.cli" in names  # the parse worked: the dispatcher was imported
    return names


def heavy(names: set[str]) -> list[str]:
    return sorted(n for n in names - ALLOWED
                  if n.split(".")[0] in HEAVY_ROOTS or n.startswith(HEAVY_PREFIXES))


@pytest.mark.parametrize("args", [("--version",), ("--help",), ("sim", "--help"),
                                  ("sim", "pinpad", "--help"), ("issue", "--help")])
def test_parser_imports_nothing_heavy(args: tuple[str, ...]) -> None:
    assert heavy(imported_modules(*args)) == []


def test_heavy_detection_can_fail() -> None:
    # The check itself: a name from the list is reported.
    assert heavy({"grpc._cython", "cardstation.simulators.cms.server",
                  "cardstation.simulators.options"}) == ["cardstation.simulators.cms.server",
                                                         "grpc._cython"]


def test_pinpad_default_kek_is_the_test_kek() -> None:
    assert options.TEST_PINPAD_KEK_HEX == TEST_PINPAD_KEK.hex().upper()


def test_version_is_the_installed_one() -> None:
    # pyproject.toml reads cardstation/_version.py: the two cannot drift, unless the
    # installation is stale (then `make setup` again).
    from importlib.metadata import version

    import cardstation

    assert cardstation.__version__ == version("cardstation")


@pytest.mark.parametrize("args", [("--version",), ("--log-json", "--version"),
                                  ("--log-level", "DEBUG", "--version")])
def test_version_answers_the_same_on_every_path(args: tuple[str, ...]) -> None:
    # the early answer (options only) and the full parser's (after an option value)
    proc = subprocess.run([sys.executable, "-m", "cardstation", *args], capture_output=True,
                          text=True, timeout=60)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, f"cardstation {version()}\n", "")


def version() -> str:
    import cardstation

    return cardstation.__version__
