"""`cardstation config check`: every problem of a station's configuration at once, the file's
own (unknown keys, wrong types, values that do not fit together) and what it points at
(certificate and key files, the token file, the data folder, serial ports, reader patterns),
each with what to do about it. Nothing is changed and no device is opened: `cardstation
doctor` looks at the devices."""

from __future__ import annotations

import os
import re
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cardstation import config as config_module
from cardstation.server.tls import is_loopback, split_host_port


@dataclass(frozen=True)
class Problem:
    what: str
    remedy: str = ""

    def __str__(self) -> str:
        return f"{self.what} — {self.remedy}" if self.remedy else self.what


def _file(path: str, what: str, *, private: bool = False,
          secret: str = "the key") -> list[Problem]:
    if not path:
        return []
    p = Path(path)
    if not p.is_file():
        return [Problem(f"{what} {path} does not exist", "fix the path, or put the file there")]
    if not os.access(p, os.R_OK):
        return [Problem(f"{what} {path} cannot be read by this user",
                        "give the station's user read access to it")]
    if private and p.stat().st_mode & 0o077:
        return [Problem(f"{what} {path} is readable by other users",
                        f"chmod 600 {path} (and consider {secret} seen: replace them)")]
    return []


def check_file(path: str | Path) -> list[Problem]:
    """Every problem of the configuration file at `path` (empty: it is fit to start)."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return [Problem(f"{p}: no such file", "give the path of cardstation.toml with --config")]
    except IsADirectoryError:
        return [Problem(f"{p}: is a folder", "give the path of cardstation.toml with --config")]
    except UnicodeDecodeError:
        return [Problem(f"{p}: is not UTF-8 text", "save it as UTF-8")]
    except OSError as exc:
        return [Problem(f"{p}: cannot be read ({exc})", "check the file's permissions")]
    except tomllib.TOMLDecodeError as exc:
        return [Problem(f"{p}: not valid TOML ({exc})", "fix the line it names")]
    config, problems = config_module.collect(data, str(p))
    found = [Problem(text) for text in problems]
    return found + check_environment(config)


def check_environment(config: config_module.Config) -> list[Problem]:
    found: list[Problem] = []
    server, cms, keys = config.server, config.cms, config.keys
    # TLS off loopback everywhere
    if not server.tls_cert and not is_loopback(split_host_port(server.listen)[0]):
        found.append(Problem(f"[server] listen {server.listen} is not loopback and has no TLS",
                             "set tls_cert and tls_key, or listen on 127.0.0.1"))
    if bool(server.tls_cert) != bool(server.tls_key):
        found.append(Problem("[server] tls_cert and tls_key go together", "set both"))
    found += _file(server.tls_cert, "[server] tls_cert")
    found += _file(server.tls_key, "[server] tls_key", private=True)
    found += _file(server.client_ca, "[server] client_ca")
    found += _file(server.audit_key, "[server] audit_key", private=True,
                   secret="the audit chain's key")
    if server.tokens_file:
        found += _tokens(server.tokens_file)
    elif not server.client_ca:
        found.append(Problem("no [server] tokens_file and no client_ca: nobody can log in",
                             "make a token with `cardstation token create --name window-1 "
                             "--role operator --file /etc/cardstation/tokens.json` and set "
                             "tokens_file to that file"))
    url = urlsplit(cms.url)
    if url.scheme == "http" and not is_loopback(url.hostname or ""):
        found.append(Problem(f"[cms] url {cms.url} is plain HTTP to another machine",
                             "use the CMS's https:// address"))
    found += _file(cms.tls_ca, "[cms] tls_ca")
    found += _file(cms.tls_cert, "[cms] tls_cert")
    found += _file(cms.tls_key, "[cms] tls_key", private=True)
    found += _file(cms.token_file, "[cms] token_file", private=True)
    if keys.service == "hsm":
        found += _file(keys.hsm_ca, "[keys] hsm_ca")
        found += _file(keys.hsm_cert, "[keys] hsm_cert")
        found += _file(keys.hsm_key, "[keys] hsm_key", private=True)
    if keys.test_keys:
        found.append(Problem("[keys] test_keys = true: the station uses published TEST keys",
                             "remove test_keys on a station that makes real cards"))
    found += _data_dir(config.data_path)
    where = "[readers]" if not config.printers else "[[printers]]"
    patterns = [(f"{where} encoder" if not config.printers else
                 f"[[printers]] {lane.name} encoder", lane.encoder) for lane in config.lanes]
    patterns += [("[readers] psam", config.readers.psam), ("[readers] desk", config.readers.desk)]
    for name, pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            found.append(Problem(f"{name} {pattern!r} is not a valid pattern ({exc})",
                                 "give the reader's name as `pcsc_scan` shows it"))
    for lane in config.lanes:
        device = lane.device
        label = "[printer]" if not config.printers else f"[[printers]] {lane.name}"
        if not device.startswith(("usb://", "socket://", "toy://")) and "://" not in device \
                and not Path(device).exists():
            found.append(Problem(f"{label} device {device} does not exist",
                                 "use usb://0d16:030a for a CS-220e on USB"))
    for name, port in (("idreader", config.window.idreader), ("pinpad", config.window.pinpad)):
        if port and "://" not in port and not Path(port).exists():
            found.append(Problem(f"[window] {name} {port} does not exist",
                                 "check the device's cable, or the port's name in /dev"))
    return found


def _tokens(path: str) -> list[Problem]:
    from cardstation.server.auth import TokenStore

    if not Path(path).exists():
        return [Problem(f"[server] tokens_file {path} does not exist",
                        f"make it with `cardstation token create --name window-1 --role "
                        f"operator --file {path}`")]
    problems = _file(path, "[server] tokens_file", private=True, secret="the token hashes")
    if problems:
        return problems
    try:
        store = TokenStore.load(path)
    except ValueError as exc:
        return [Problem(str(exc), "fix the entry, or make a new file with `cardstation token "
                                  "create`")]
    if not any(e.expires_at is None or e.expires_at > time.time() for e in store.entries):
        return [Problem(f"[server] tokens_file {path} has no token that has not expired",
                        "make one with `cardstation token create --name window-1 --role "
                        f"operator --file {path}`")]
    return []


def _data_dir(path: Path) -> list[Problem]:
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not os.access(existing, os.W_OK):
        return [Problem(f"[station] data_dir {path}: {existing} cannot be written by this user",
                        "make the folder and give it to the station's user (mode 0700)")]
    if path.exists() and path.stat().st_mode & 0o077:
        return [Problem(f"[station] data_dir {path} is open to other users",
                        f"chmod 700 {path} (the station also does this when it starts)")]
    return []
