"""`make bundle`: one archive that installs a station with no network.

  python -m cardstation.install.bundle [--out dist] [--cache var/bundle-cache]

Builds dist/cardstation-bundle-<version>.tar.gz holding
  wheels/            the project's wheel and one for every Python dependency (pyscard built)
  wheels-test/       pytest and the test plug-ins, to run the tests' fast subset offline
  debs/              the Debian 12 packages a station needs with what they depend on beyond
                     the base system, resolved by apt against that base (assumed-present.txt)
  install.sh         dpkg -i the debs, python3 -m venv, pip install --no-index, cardstation install
  README.txt, assumed-present.txt, SHA256SUMS
Building needs the network (pip and apt download); it must run on the station's release and
architecture (Debian 12, the same Python), as root (apt). The .debs are cached in --cache.
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from string import Template

from cardstation import __version__

# What a station runs on besides Python: the PC/SC daemon, its library and the USB reader
# driver (the encoder and desk readers), pcsc_scan for diagnosis, venv for the install, the
# Chinese font of the card face, libusb for the printer. Never vsmartcard-vpcd (a virtual reader
# lets anyone who can connect present a card: docs/vpcd.md), never a browser.
DEB_PACKAGES = ("pcscd", "libpcsclite1", "libccid", "pcsc-tools", "python3-venv",
                "fonts-wqy-zenhei", "libusb-1.0-0")
FORBIDDEN_DEBS = ("vsmartcard-vpcd", "chromium")
DPKG_STATUS = Path("/var/lib/dpkg/status")
_FIELD = re.compile(r"^([A-Za-z0-9-]+):\s*(.*)$")


def _stanzas(text: str) -> list[tuple[dict[str, str], str]]:
    out = []
    for block in text.split("\n\n"):
        fields = {m[1]: m[2] for m in map(_FIELD.match, block.splitlines()) if m}
        if "Package" in fields:
            out.append((fields, block.strip("\n")))
    return out


def dependency_names(value: str) -> list[list[str]]:
    """A Depends field as alternatives of package names: "a (>= 1) | b, c:any" -> [[a, b], [c]]."""
    groups = []
    for group in filter(None, (g.strip() for g in value.split(","))):
        groups.append([re.split(r"[\s(:\[]", alt.strip())[0] for alt in group.split("|")])
    return groups


def base_system(status_text: str) -> tuple[str, list[str]]:
    """The base a Debian 12 installation always has, from a dpkg status file of one: the
    essential, required and important packages installed and everything they depend on.
    Returns that base as a status file (for apt to resolve against) and its "name version"s."""
    installed = {f["Package"]: (f, block) for f, block in _stanzas(status_text)
                 if f.get("Status", "").endswith(" installed")}
    base = {name for name, (f, _) in installed.items()
            if f.get("Essential") == "yes" or f.get("Priority") in ("required", "important")}
    todo = list(base)
    while todo:
        fields = installed[todo.pop()][0]
        for key in ("Pre-Depends", "Depends"):
            for group in dependency_names(fields.get(key, "")):
                found = next((alt for alt in group if alt in installed), None)
                if found and found not in base:
                    base.add(found)
                    todo.append(found)
    names = sorted(base)
    text = "\n\n".join(installed[n][1] for n in names) + "\n\n"
    return text, [f"{n} {installed[n][0].get('Version', '')}" for n in names]


def download_debs(packages: Iterable[str], cache: Path, base_status: Path) -> list[Path]:
    """Download `packages` and the dependencies a base system lacks into `cache`; the .debs.

    apt resolves them as if the dpkg database held only the base (so it picks alternatives
    and virtual packages' providers as an install on a bare station would) and downloads
    only, keeping what is in `cache` already."""
    (cache / "partial").mkdir(parents=True, exist_ok=True)

    def apt(archives: Path, *extra: str) -> str:
        argv = ["apt-get", "install", "--download-only", "--yes", "--quiet", "--quiet",
                "--no-install-recommends", "-o", f"Dir::State::status={base_status}",
                "-o", f"Dir::Cache::archives={archives}", "-o", "Debug::NoLocking=1",
                *extra, *packages]
        return subprocess.run(argv, check=True, capture_output=True, text=True).stdout

    # --print-uris leaves out what the archive folder holds already: ask with an empty one
    with tempfile.TemporaryDirectory() as empty:
        (Path(empty) / "partial").mkdir()
        listing = apt(Path(empty), "--print-uris")
    wanted = [cache / line.split()[1] for line in listing.splitlines() if line.startswith("'")]
    if any(not path.exists() for path in wanted):
        apt(cache)
    missing = [p.name for p in wanted if not p.exists()]
    if missing or not wanted:
        raise RuntimeError(f"apt did not download {', '.join(missing) or 'anything'}")
    return wanted


#: What running the tests' fast subset on the station takes besides the station itself
#: (`wheels-test/`: a county IT person can check an offline install with the project's tests).
TEST_REQUIREMENTS = ("pytest>=8", "pytest-timeout>=2.2", "hypothesis>=6.90")


def build_wheels(project: Path, wheels: Path, log: Path, *requirements: str) -> None:
    """The project's wheel and one per runtime dependency (sdists such as pyscard built), or
    the wheels of `requirements` when given.

    pip's and the build backends' chatter goes to `log`, shown only when the build fails."""
    targets = list(requirements) or [str(project)]
    with log.open("w", encoding="utf-8") as out:
        done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--disable-pip-version-check",
                               "--wheel-dir", str(wheels), *targets],
                              stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        tail = "".join(log.read_text(encoding="utf-8").splitlines(keepends=True)[-15:])
        raise RuntimeError(f"pip wheel failed (exit {done.returncode}; log {log}):\n{tail}")


def _render(name: str, values: dict[str, str]) -> str:
    text = resources.files("cardstation.install").joinpath("templates", name)
    return Template(text.read_text(encoding="utf-8")).substitute(values)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build(project: Path, out: Path, cache: Path) -> Path:
    """Build the bundle; its path."""
    name = f"cardstation-bundle-{__version__}"
    staging = cache / "staging" / name
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "debs").mkdir(parents=True)
    status_text, base = base_system(DPKG_STATUS.read_text(encoding="utf-8"))
    base_status = cache / "base-status"
    base_status.write_text(status_text, encoding="utf-8")
    for deb in download_debs(DEB_PACKAGES, cache / "debs", base_status):
        shutil.copy2(deb, staging / "debs" / deb.name)
    build_wheels(project, staging / "wheels", cache / "pip-wheel.log")
    build_wheels(project, staging / "wheels-test", cache / "pip-wheel-test.log",
                 *TEST_REQUIREMENTS)
    arch = subprocess.run(["dpkg", "--print-architecture"], check=True, capture_output=True,
                          text=True).stdout.strip()
    major, minor = platform.python_version_tuple()[:2]
    values = {"version": __version__, "arch": arch, "python": f"{major}.{minor}",
              "python_tuple": f"{major}, {minor}"}
    (staging / "install.sh").write_text(_render("bundle-install.sh", values), encoding="utf-8")
    (staging / "install.sh").chmod(0o755)
    (staging / "README.txt").write_text(_render("bundle-README.txt", values), encoding="utf-8")
    (staging / "assumed-present.txt").write_text(
        "# Packages (name version) the bundle assumes on the station: a Debian 12 base.\n"
        + "\n".join(base) + "\n", encoding="utf-8")
    files = sorted(p for p in staging.rglob("*") if p.is_file())
    (staging / "SHA256SUMS").write_text(
        "".join(f"{_sha256(p)}  {p.relative_to(staging)}\n" for p in files), encoding="utf-8")
    out.mkdir(parents=True, exist_ok=True)
    archive = out / f"{name}.tar.gz"
    partial = archive.with_suffix(".partial")
    with tarfile.open(partial, "w:gz") as tar:
        tar.add(staging, arcname=name)
    partial.replace(archive)
    return archive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cardstation.install.bundle",
                                     description="build the offline install bundle")
    parser.add_argument("--out", default="dist", help="where the archive goes (default dist)")
    parser.add_argument("--cache", default="var/bundle-cache",
                        help="downloaded .debs and the staging folder (default var/bundle-cache)")
    parser.add_argument("--project", default=".", help="the project folder (default .)")
    args = parser.parse_args(argv)
    try:
        archive = build(Path(args.project).resolve(), Path(args.out), Path(args.cache).resolve())
    except (subprocess.CalledProcessError, RuntimeError, OSError) as exc:
        print(f"bundle: {exc}; building needs the network (pip, apt) and root (apt), on the "
              "station's Debian release", file=sys.stderr)
        return 1
    print(archive)
    return 0


if __name__ == "__main__":
    sys.exit(main())
