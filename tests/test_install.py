"""`cardstation install` and the offline bundle of `make bundle`.

The install tests write into a staging root (--root): they never create a user, call systemctl
or touch this machine's /etc. The bundle tests build the bundle once (network and root needed;
cached in var/bundle-test while the install sources are unchanged) and install it inside a
network namespace with no route (`unshare --net`): pip with --no-index must find every wheel.
The .debs are not installed (that would change the test machine): they are read with dpkg-deb,
and every dependency of each is shown to be met by the bundle or the base system the bundle
declares (assumed-present.txt), which is what `dpkg -i debs/*.deb` on a bare station needs.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cardstation import __version__
from cardstation.cli import main
from cardstation.commands.install import HIDDEN_FROM_SERVICE
from cardstation.install import bundle, files, system

REPO = Path(__file__).resolve().parent.parent
STATION_EXEC = "/opt/cardstation/venv/bin/cardstation"  # need not exist under --root
UNIT = "etc/systemd/system/cardstation.service"
RULE = "etc/udev/rules.d/70-cardstation-printer.rules"
SYSUSERS = "etc/sysusers.d/cardstation.conf"


def install(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    code = main(["install", *args])
    return code, capsys.readouterr().out.splitlines()


@pytest.fixture
def staged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    code, _ = install(capsys, "--root", str(tmp_path), "--exec", STATION_EXEC)
    assert code == 0
    return tmp_path


def unit_of(root: Path) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read(root / UNIT, encoding="utf-8")
    return parser


def values_of(path: Path, key: str) -> list[str]:
    """Every value of a key the unit gives more than once (configparser keeps the last)."""
    return [line.split("=", 1)[1] for line in path.read_text().splitlines()
            if line.startswith(f"{key}=")]


# ---- the unit ---------------------------------------------------------------------------

def test_the_unit_runs_serve_as_its_own_user_hardened(staged: Path) -> None:
    unit = unit_of(staged)
    service = unit["Service"]
    assert service["ExecStart"] == (f"{STATION_EXEC} --log-level INFO --log-file "
                                    f"/var/log/cardstation/cardstation.log serve --config "
                                    f"{files.CONFIG}")
    assert files.CONFIG == "/etc/cardstation/cardstation.toml"
    assert service["User"] == "cardstation" and service["Group"] == "cardstation"
    assert files.DEVICE_GROUP in service["SupplementaryGroups"].split()
    assert service["StateDirectory"] == "cardstation"
    assert service["WorkingDirectory"] == "/var/lib/cardstation"
    assert service["Restart"] == "on-failure"
    assert service["RestartPreventExitStatus"] == "2"  # a bad config is not retried
    for key, value in {"ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
                       "NoNewPrivileges": "yes", "CapabilityBoundingSet": "",
                       "DevicePolicy": "closed"}.items():
        assert service[key] == value, key
    assert "char-usb_device rw" in values_of(staged / UNIT, "DeviceAllow")
    assert "pcscd.socket" in unit["Unit"]["Wants"].split()
    assert "pcscd.socket" in unit["Unit"]["After"].split()
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def _verifiable_copy(staged: Path, tmp_path: Path) -> Path:
    # verify insists that ExecStart's program exists; the station's path is not on this
    # machine, so only that path is swapped for one that is
    text = (staged / UNIT).read_text()
    copy = tmp_path / "verify" / "cardstation.service"
    copy.parent.mkdir()
    copy.write_text(re.sub(r"^ExecStart=\S+", "ExecStart=/bin/true", text, flags=re.M))
    return copy


needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze is not installed here (Debian: "
                                   "systemd); the unit was only parsed")


def _verify(unit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                          text=True, timeout=60)


@needs_analyze
def test_systemd_analyze_verify_passes_without_a_warning(staged: Path, tmp_path: Path) -> None:
    done = _verify(_verifiable_copy(staged, tmp_path))
    # verify only warns (exit 0) on an unknown key or a bad value: any output is a failure
    assert done.returncode == 0 and done.stderr == "" and done.stdout == "", done.stderr


@needs_analyze
def test_verify_would_see_an_option_systemd_does_not_know(staged: Path, tmp_path: Path) -> None:
    copy = _verifiable_copy(staged, tmp_path)
    copy.write_text(copy.read_text().replace("ProtectHome=yes", "ProtectHome=yes\nProtectFoo=yes"))
    assert "ProtectFoo" in _verify(copy).stderr


@needs_analyze
def test_the_exposure_systemd_scores_stays_low(staged: Path, tmp_path: Path) -> None:
    copy = _verifiable_copy(staged, tmp_path)

    def exposed(unit: Path) -> bool:  # threshold 20 = an overall exposure above 2.0
        return subprocess.run(["systemd-analyze", "security", "--offline=yes", "--threshold=20",
                               str(unit)], capture_output=True, timeout=60).returncode != 0

    assert not exposed(copy)
    weakened = copy.read_text()
    for key in ("ProtectSystem=strict", "ProtectHome=yes", "CapabilityBoundingSet=",
                "SystemCallFilter=@system-service", "RestrictNamespaces=yes",
                "ProtectKernelTunables=yes", "PrivateTmp=yes", "DevicePolicy=closed"):
        weakened = weakened.replace(key + "\n", "")
    copy.write_text(weakened)
    assert exposed(copy)


# ---- the udev rule and the user ---------------------------------------------------------

_TOKEN = re.compile(r'^(?P<key>[A-Z_]+)(?:\{(?P<attr>[^}]+)\})?(?P<op>==|!=|\+=|-=|:=|=)'
                    r'"(?P<value>[^"]*)"$')


def rules_of(path: Path) -> list[dict[str, tuple[str, str]]]:
    """Each rule line as {KEY or KEY{attr}: (operator, value)}; fails on a malformed token."""
    rules = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        rule = {}
        for token in re.split(r",\s*(?=[A-Z_]+(?:\{[^}]*\})?(?:==|!=|\+=|-=|:=|=)\")", line):
            match = _TOKEN.match(token.strip())
            assert match, f"malformed udev token {token!r}"
            name = match["key"] + (f"{{{match['attr']}}}" if match["attr"] else "")
            rule[name] = (match["op"], match["value"])
        rules.append(rule)
    return rules


def test_the_udev_rule_gives_the_printer_to_the_group_and_unbinds_usblp(staged: Path) -> None:
    rules = rules_of(staged / RULE)
    assert len(rules) == 2
    node, unbind = rules
    assert node["ATTR{idVendor}"] == ("==", "0d16") and node["ATTR{idProduct}"] == ("==", "030a")
    assert node["ENV{DEVTYPE}"] == ("==", "usb_device")
    assert node["GROUP"] == ("=", files.DEVICE_GROUP) and node["MODE"] == ("=", "0660")
    assert unbind["DRIVER"] == ("==", "usblp") and unbind["ACTION"] == ("==", "add|bind")
    assert unbind["ATTRS{idVendor}"] == ("==", "0d16")
    assert unbind["ATTRS{idProduct}"] == ("==", "030a")
    op, command = unbind["RUN"]
    assert op == "+=" and "/sys/bus/usb/drivers/usblp/unbind" in command and "%k" in command
    # the group the rule names is the one the service joins and sysusers creates
    assert f"g {files.DEVICE_GROUP} -" in (staged / SYSUSERS).read_text()


def test_the_rule_parser_rejects_a_malformed_rule(tmp_path: Path) -> None:
    bad = tmp_path / "bad.rules"
    bad.write_text('SUBSYSTEM=="usb", ATTR{idVendor}=="0d16" GROUP="x"\n')  # comma missing
    with pytest.raises(AssertionError, match="malformed"):
        rules_of(bad)


@pytest.mark.skipif(subprocess.run(["udevadm", "verify", "--help"], capture_output=True)
                    .returncode != 0 if shutil.which("udevadm") else True,
                    reason="udevadm verify needs systemd >= 253 (Debian 12 has 252); the rule "
                    "is checked by the parser test above")
def test_udevadm_verify_passes(staged: Path) -> None:
    done = subprocess.run(["udevadm", "verify", str(staged / RULE)], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None,
                    reason="systemd-sysusers is not installed here")
def test_sysusers_creates_the_user_and_group_once(staged: Path, tmp_path: Path) -> None:
    target = tmp_path / "target"
    (target / "etc").mkdir(parents=True)

    def sysusers() -> str:
        return subprocess.run(["systemd-sysusers", f"--root={target}", str(staged / SYSUSERS)],
                              capture_output=True, text=True, check=True).stderr

    assert "Creating user 'cardstation'" in sysusers()
    passwd = (target / "etc/passwd").read_text()
    user = next(line for line in passwd.splitlines() if line.startswith("cardstation:"))
    assert user.split(":")[5:] == ["/var/lib/cardstation", "/usr/sbin/nologin"]
    assert re.search(rf"^{files.DEVICE_GROUP}:x:\d+:", (target / "etc/group").read_text(), re.M)
    assert "Creating" not in sysusers()
    assert (target / "etc/passwd").read_text() == passwd


# ---- idempotence, dry run, refusals ----------------------------------------------------

def _snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_ino, p.stat().st_mtime_ns, p.stat().st_mode)
            for p in root.rglob("*")}


def test_a_second_run_changes_nothing(staged: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = _snapshot(staged)
    code, out = install(capsys, "--root", str(staged), "--exec", STATION_EXEC)
    assert code == 0
    assert [line for line in out if not line.startswith("not run")] == [
        f"unchanged {staged / UNIT}", f"unchanged {staged / RULE}",
        f"unchanged {staged / SYSUSERS}", f"unchanged {staged / 'etc/cardstation'}/"]
    assert _snapshot(staged) == before
    # nothing changed, so neither systemd nor udev would be asked to reload
    assert not any("daemon-reload" in line or "udevadm" in line for line in out)


def test_a_changed_file_is_put_back(staged: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = (staged / UNIT).read_text()
    (staged / UNIT).write_text(good.replace("ProtectSystem=strict", "ProtectSystem=no"))
    os.chmod(staged / RULE, 0o666)
    code, out = install(capsys, "--root", str(staged), "--exec", STATION_EXEC)
    assert code == 0
    assert f"written {staged / UNIT}" in out and f"written {staged / RULE}" in out
    assert f"unchanged {staged / SYSUSERS}" in out
    assert (staged / UNIT).read_text() == good
    assert (staged / RULE).stat().st_mode & 0o777 == 0o644
    assert "not run (staging root): systemctl daemon-reload" in out


def test_dry_run_prints_every_path_and_writes_nothing(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, out = install(capsys, "--root", str(tmp_path), "--exec", STATION_EXEC, "--dry-run")
    assert code == 0
    assert list(tmp_path.iterdir()) == []
    for path in (UNIT, RULE, SYSUSERS):
        assert f"would write {tmp_path / path}" in out
    assert f"would create {tmp_path / 'etc/cardstation'}/" in out


def test_the_staging_root_gets_the_config_folder_closed(staged: Path) -> None:
    assert (staged / "etc/cardstation").stat().st_mode & 0o777 == 0o750


@pytest.mark.parametrize("where", [*HIDDEN_FROM_SERVICE, "opt/relative"])
def test_a_program_the_service_cannot_see_is_refused(where: str, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["install", "--root", str(tmp_path), "--exec", f"{where}/venv/bin/cardstation"])
    assert code == 1
    assert list(tmp_path.iterdir()) == []
    err = capsys.readouterr().err
    assert "make install" in err or "absolute" in err


def test_a_live_install_refuses_while_vpcd_is_present(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from cardstation import vpcd_check

    finding = vpcd_check.Finding("error", "vpcd reader 'x' listens on every interface; remove it")
    monkeypatch.setattr(vpcd_check, "check_vpcd", lambda real_station: [finding])
    code = main(["install", "--dry-run", "--exec", "/bin/sh"])
    assert code == 1
    assert "listens on every interface" in capsys.readouterr().err


def test_a_live_dry_run_lists_the_commands_and_runs_none(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from cardstation import vpcd_check

    monkeypatch.setattr(vpcd_check, "check_vpcd", lambda real_station: [])
    monkeypatch.setattr(system, "run_command", lambda argv: pytest.fail(f"ran {argv}"))
    code, out = install(capsys, "--dry-run", "--exec", "/bin/sh")
    assert code == 0
    assert "not run (dry run): systemctl enable --now pcscd.socket" in out
    assert "not run (dry run): systemd-sysusers /etc/sysusers.d/cardstation.conf" in out


def test_live_steps_reload_only_what_changed_and_never_touch_vpcd() -> None:
    first = system.commands({files.UNIT_PATH, files.UDEV_RULE_PATH, files.SYSUSERS_PATH}, True)
    again = system.commands(set(), True)
    assert ["systemctl", "daemon-reload"] in first and ["udevadm", "control", "--reload"] in first
    assert again == [["systemd-sysusers", files.SYSUSERS_PATH],
                     ["systemctl", "enable", "--now", "pcscd.socket"],
                     ["systemctl", "enable", "cardstation.service"]]
    # the user comes first: udev's GROUP= and the unit's User= need it
    assert first[0] == ["systemd-sysusers", files.SYSUSERS_PATH]
    assert not any("vpcd" in " ".join(argv) for argv in first)
    assert not any(argv[0] == "systemctl" for argv in system.commands(set(), False))


def test_a_failing_step_stops_the_install_with_its_remedy() -> None:
    ran: list[list[str]] = []

    def run(argv: list[str]) -> int:
        ran.append(list(argv))
        return 1

    with pytest.raises(system.InstallStepFailed, match="safe to repeat"):
        system.apply(set(), run=run, systemd_running=True, say=lambda _: None)
    assert ran == [["systemd-sysusers", files.SYSUSERS_PATH]]


# ---- the offline bundle ------------------------------------------------------------------

def test_base_system_closes_over_dependencies() -> None:
    status = "\n\n".join([
        "Package: a\nStatus: install ok installed\nPriority: required\nVersion: 1\n"
        "Depends: b (>= 2) | c, d:any",
        "Package: b\nStatus: install ok installed\nPriority: optional\nVersion: 2",
        "Package: c\nStatus: install ok installed\nPriority: optional\nVersion: 3",
        "Package: d\nStatus: install ok installed\nPriority: optional\nVersion: 4",
        "Package: e\nStatus: install ok installed\nPriority: optional\nVersion: 5",
        "Package: f\nStatus: deinstall ok config-files\nPriority: required\nVersion: 6",
    ])
    text, names = bundle.base_system(status)
    assert names == ["a 1", "b 2", "d 4"]  # the first alternative installed, not c; not e, f
    assert "Package: e" not in text


BUNDLE_DIR = REPO / "var" / "bundle-test"
BUNDLE_SOURCES = [REPO / "pyproject.toml", REPO / "setup.py",
                  *(REPO / "cardstation" / "install").rglob("*")]


#: the part of `make test` that needs neither pcscd nor a browser nor the source folders
FAST_SUBSET = ["tests/test_rules_id_number.py", "tests/test_rules_card_number.py",
               "tests/test_rules_name.py", "tests/test_rules_codes.py",
               "tests/test_rules_photo.py", "tests/test_journal.py", "tests/test_outbox.py",
               "tests/test_cms_client.py", "tests/test_cms_sim.py", "tests/test_hiti_frames.py",
               "tests/test_pinpad_protocol.py", "tests/test_card_crypto.py",
               "tests/test_config_check.py", "tests/test_log_files.py"]


@pytest.fixture(scope="module")
def bundle_folder() -> Iterator[Path]:
    """The bundle, unpacked: built once while the install's sources are unchanged."""
    archive = BUNDLE_DIR / f"cardstation-bundle-{__version__}.tar.gz"
    newest = max(p.stat().st_mtime for p in BUNDLE_SOURCES if p.is_file())
    if not archive.exists() or archive.stat().st_mtime < newest:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            pytest.skip("building the bundle needs root and apt-get (Debian 12)")
        done = subprocess.run([sys.executable, "-m", "cardstation.install.bundle", "--out",
                               str(BUNDLE_DIR), "--cache", str(REPO / "var" / "bundle-cache"),
                               "--project", str(REPO)], capture_output=True, text=True,
                              timeout=600)
        if done.returncode != 0:
            pytest.skip(f"the bundle could not be built here (it needs the network: run this "
                        f"test once outside a network namespace): {done.stderr[-400:]}")
    unpacked = Path(tempfile.mkdtemp(prefix="bundle-", dir=_visible_scratch()))
    with tarfile.open(archive) as tar:
        tar.extractall(unpacked, filter="data")
    yield unpacked / f"cardstation-bundle-{__version__}"
    shutil.rmtree(unpacked, ignore_errors=True)


def _visible_scratch() -> Path:
    # the installed program's path goes into the unit, and the installer refuses one the
    # hardened service could not see (/tmp, /home): scratch space outside those
    scratch = REPO / "var"
    if any(str(scratch).startswith(d + "/") for d in HIDDEN_FROM_SERVICE):
        scratch = Path("/opt")
    scratch.mkdir(exist_ok=True)
    return scratch


def _deb_field(deb: Path, field: str) -> str:
    return subprocess.run(["dpkg-deb", "-f", str(deb), field], capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.mark.slow
def test_the_bundle_holds_the_debs_a_bare_station_needs(bundle_folder: Path) -> None:
    debs = sorted((bundle_folder / "debs").glob("*.deb"))
    for deb in debs:  # each is a readable package
        subprocess.run(["dpkg-deb", "--info", str(deb)], capture_output=True, check=True)
    names = {_deb_field(deb, "Package") for deb in debs}
    assert set(bundle.DEB_PACKAGES) <= names
    assert not names & set(bundle.FORBIDDEN_DEBS) and not any("vpcd" in n for n in names)

    base = {line.split()[0] for line in (bundle_folder / "assumed-present.txt").read_text()
            .splitlines() if line and not line.startswith("#")}
    provided = set(names) | base
    for deb in debs:
        provided |= {p[0] for p in bundle.dependency_names(_deb_field(deb, "Provides"))}
    status = Path("/var/lib/dpkg/status").read_text()  # the base's own Provides (debconf-2.0)
    for block in status.split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z-]+): (.*)$", block, re.M))
        if fields.get("Package") in base:
            provided |= {p[0] for p in bundle.dependency_names(fields.get("Provides", ""))}
    unmet = [(deb.name, group) for deb in debs for key in ("Pre-Depends", "Depends")
             for group in bundle.dependency_names(_deb_field(deb, key))
             if not any(alt in provided for alt in group)]
    assert unmet == []
    subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=bundle_folder, check=True)


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="a network namespace needs root and unshare(1)")
def test_the_bundle_installs_with_no_network(bundle_folder: Path) -> None:
    def offline(*argv: str) -> subprocess.CompletedProcess[str]:
        # not from the checkout: `python -c` would import its cardstation/ folder instead
        return subprocess.run(["unshare", "--net", *argv], capture_output=True, text=True,
                              timeout=300, cwd=bundle_folder.parent)

    # the namespace really has no route: the index cannot be reached from it
    probe = offline("python3", "-c", "import socket; socket.create_connection(('1.1.1.1', 443), 3)")
    assert probe.returncode != 0 and "unreachable" in probe.stderr.lower()

    prefix, stage = bundle_folder.parent / "opt", bundle_folder.parent / "stage"
    script = [str(bundle_folder / "install.sh"), "--no-debs", "--prefix", str(prefix),
              "--root", str(stage)]
    done = offline(*script)
    assert done.returncode == 0, done.stdout + done.stderr
    program = prefix / "venv" / "bin" / "cardstation"
    assert f"installed cardstation {__version__} in {prefix}/venv" in done.stdout
    imports = offline(str(prefix / "venv/bin/python"), "-c",
                      "import smartcard.System, usb.core, grpc, cryptography, PIL.Image, "
                      "starlette, cardstation.protos.cardstation.v1.issuance_pb2, "
                      "cardstation.cli; print('ok')")
    assert imports.stdout.strip() == "ok", imports.stderr
    assert unit_of(stage)["Service"]["ExecStart"].startswith(f"{program} --log-level INFO ")
    # the installed program runs with no network (its package data, its compiled pyscard)
    checked = offline(str(program), "validate", "--id-number", "11010519491231002X")
    assert checked.returncode == 0 and '"findings": []' in checked.stdout, checked.stderr

    # make test's fast subset, from the checkout's tests, on the installed station, offline
    python = str(prefix / "venv/bin/python")
    extras = offline(python, "-m", "pip", "install", "--no-index", "--quiet", "--find-links",
                     str(bundle_folder / "wheels-test"), "--find-links",
                     str(bundle_folder / "wheels"), *bundle.TEST_REQUIREMENTS)
    assert extras.returncode == 0, extras.stdout + extras.stderr
    scratch = Path(tempfile.mkdtemp(prefix="fast-", dir=bundle_folder.parent))
    shutil.copytree(REPO / "tests", scratch / "tests")
    shutil.copy2(REPO / "pyproject.toml", scratch)  # the pytest settings, and nothing to import
    # loopback up (the tests talk to their simulators on 127.0.0.1), still no route out
    fast = subprocess.run(["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"',
                           "sh", python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m",
                           "not pcscd and not browser", *FAST_SUBSET],
                          capture_output=True, text=True, timeout=600, cwd=scratch)
    assert fast.returncode == 0, fast.stdout[-3000:] + fast.stderr[-2000:]
    assert " passed" in fast.stdout and str(prefix) in offline(
        python, "-c", "import cardstation; print(cardstation.__file__)").stdout

    again = offline(*script)
    assert again.returncode == 0, again.stderr
    assert "written" not in again.stdout and f"unchanged {stage / UNIT}" in again.stdout
