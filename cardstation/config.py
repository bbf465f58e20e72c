"""Station configuration from `cardstation.toml` (stdlib tomllib), simulated devices by default.

```toml
[station]
id = "410700-W01"           # claims at the CMS are made in this name
data_dir = "var/station"    # SQLite journal, previews, audit log
min_free_mb = 64            # a job is admitted only with this much room left on that disk
preview_retention_days = 30 # previews of DONE/REJECTED cards older than this are deleted
                            #   (`cardstation backup --prune`); 0 = as soon as the card ends
personal_data_days = 30     # personal fields of DONE/REJECTED jobs older than this are purged
                            #   (the server daily, `cardstation retention purge`); 0 = keep
[cms]
kind = "reference-http"     # the CMS adapter (cardstation/registries.py; docs/cms-adapter.md)
url = "http://127.0.0.1:8600"
connect_timeout = 3.0
read_timeout = 10.0
tls_ca = ""                 # https: the CA the CMS's certificate chains to (default: system's)
tls_cert = ""               # https: client certificate and key (mutual TLS), key mode 0600
tls_key = ""
token_file = ""             # a 0600 file holding the bearer token the CMS issued this station
[cms.options]               # the adapter's own keys (the reference adapter takes none)
[printer]
model = "hiti-cs220e"       # the printer adapter (cardstation/registries.py)
device = "socket://127.0.0.1:9100"   # or usb://0d16:030a[?serial=...]
poll_interval = 1.0
panel_pause = 0.2
[[printers]]                # optional, one table per printer ("lane"); without any, one lane
name = "1"                  #   named "1" is made of [printer] and [readers] encoder
model = "hiti-cs220e"
device = "usb://0d16:030a?serial=A1"
encoder = "HiTi CS-220e Encoder 00 00"   # this printer's chip encoder (PC/SC reader)
[readers]                   # PC/SC reader names or regular expressions
encoder = "Virtual PCD 00 00"
psam = "Virtual PCD 00 01"
desk = "Virtual PCD Desk 00 00"
[keys]
service = "psam"            # "psam", "hsm" (remote encryption machine), or "software"
test_keys = false           #   (test keys; needs test_keys = true)
hsm_address = ""            # hsm: host:port of the encryption machine (TLS)
hsm_ca = ""                 # hsm: PEM CA the machine's certificate must chain to (required)
hsm_cert = ""               # hsm: PEM client certificate and key the station presents (mTLS)
hsm_key = ""
hsm_system_id = ""          # hsm: system id the machine knows the station by (e.g. 410700006)
hsm_terminal = ""           # hsm: terminal code (default: the station id)
hsm_key_address = "0094"    # hsm: key address of the card keys
hsm_timeout = 5.0           # hsm: seconds to connect and to wait for an answer
[photo]
min_kb = 14
max_kb = 70
[returns]
base_delay = 2.0
max_delay = 300.0
[window]
idreader = "/dev/ttyUSB0"   # GA 467 ID-card reader ("" = none)
pinpad = "/dev/ttyUSB1"     # PIN pad ("" = none)
pin_timeout = 30
[server]
listen = "127.0.0.1:50051"
tls_cert = ""               # PEM files; TLS is required on any non-loopback address
tls_key = ""
client_ca = ""              # set to accept client certificates (mTLS)
tokens_file = ""            # hashed bearer tokens with roles and expiry
client_roles = ""           # "console-01=operator,hub=upstream" for mTLS callers
audit_log = ""              # default <data_dir>/audit.jsonl
audit_key = ""              # HMAC key of the audit chain, 0600; default <data_dir>/audit.key
metrics_listen = "127.0.0.1:9464"  # /metrics for Prometheus ("" = off); TLS off loopback
max_streams = 5000          # watch streams held at once (consoles, upstream watchers)
```
Errors name the file, the key and what is wrong; unknown keys are errors (a typo must not fall
back to a default silently).
"""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class StationSection:
    id: str = "410700-W01"
    data_dir: str = "var/station"
    min_free_mb: int = 64
    preview_retention_days: int = 30  # previews of finished cards kept this long (days)
    # personal fields of finished jobs kept this long (days; 0 = kept): as long as the preview
    # (the same photo), since the CMS holds the record and a reprint is asked for within days
    personal_data_days: int = 30


@dataclass(frozen=True)
class CmsSection:
    kind: str = "reference-http"  # the adapter, by name (cardstation/registries.py CMS_KINDS)
    url: str = "http://127.0.0.1:8600"
    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    tls_ca: str = ""  # PEM of the CA the CMS's certificate must chain to (default: the system's)
    tls_cert: str = ""  # PEM client certificate the station presents (mutual TLS), with ...
    tls_key: str = ""  # ... its key (0600)
    token_file: str = ""  # a file (0600) holding the bearer token the CMS issued this station
    options: dict[str, Any] = field(default_factory=dict)  # [cms.options]: the adapter's own


@dataclass(frozen=True)
class PrinterSection:
    model: str = "hiti-cs220e"  # the adapter, by name (cardstation/registries.py PRINTER_MODELS)
    device: str = "socket://127.0.0.1:9100"
    poll_interval: float = 1.0  # status polling while the printer is busy (s)
    panel_pause: float = 0.2  # pause after each panel upload (gutenprint's 200 ms for HiTi)
    options: dict[str, Any] = field(default_factory=dict)  # [printer.options]: the model's own


@dataclass(frozen=True)
class LaneSection:
    """One `[[printers]]` table: a printer with its chip encoder (a lane)."""

    name: str = ""
    model: str = "hiti-cs220e"
    device: str = ""
    encoder: str = ""  # the PC/SC reader name (or pattern) of this printer's chip encoder
    poll_interval: float = 1.0
    panel_pause: float = 0.2
    options: dict[str, Any] = field(default_factory=dict)


#: How many printers one station drives at most: each encodes while the others print, and
#: card vendors' suites advise at most four encoding printers per PC.
MAX_LANES = 4


@dataclass(frozen=True)
class ReadersSection:
    encoder: str = "Virtual PCD 00 00"
    psam: str = "Virtual PCD 00 01"
    desk: str = "Virtual PCD Desk 00 00"


@dataclass(frozen=True)
class KeysSection:
    service: str = "psam"
    test_keys: bool = False
    hsm_address: str = ""
    hsm_ca: str = ""
    hsm_cert: str = ""
    hsm_key: str = ""
    hsm_system_id: str = ""
    hsm_terminal: str = ""
    hsm_key_address: str = "0094"
    hsm_timeout: float = 5.0


@dataclass(frozen=True)
class PhotoSection:
    min_kb: int = 14
    max_kb: int = 70


@dataclass(frozen=True)
class ReturnsSection:
    base_delay: float = 2.0
    max_delay: float = 300.0


@dataclass(frozen=True)
class WindowSection:
    idreader: str = ""  # GA 467 serial port or pyserial URL ("" = none)
    idreader_baud: int = 115200
    pinpad: str = ""  # PIN pad serial port or URL ("" = none)
    pin_timeout: int = 30  # seconds the holder has to type a PIN


@dataclass(frozen=True)
class ServerSection:
    listen: str = "127.0.0.1:50051"
    tls_cert: str = ""  # PEM; required off loopback
    tls_key: str = ""
    client_ca: str = ""  # PEM; when set, callers may present client certificates (mTLS)
    tokens_file: str = ""  # JSON of hashed bearer tokens (see cardstation.server.auth)
    client_roles: str = ""  # "CN=role,CN=role" for mTLS callers
    audit_log: str = ""  # default: <data_dir>/audit.jsonl
    audit_key: str = ""  # default: <data_dir>/audit.key (created 0600 on first start)
    metrics_listen: str = "127.0.0.1:9464"  # /metrics for Prometheus ("" = off; TLS off loopback)
    max_streams: int = 5000  # watch streams held at once; one more is refused at once


@dataclass(frozen=True)
class Config:
    station: StationSection = field(default_factory=StationSection)
    cms: CmsSection = field(default_factory=CmsSection)
    printer: PrinterSection = field(default_factory=PrinterSection)
    readers: ReadersSection = field(default_factory=ReadersSection)
    keys: KeysSection = field(default_factory=KeysSection)
    photo: PhotoSection = field(default_factory=PhotoSection)
    returns: ReturnsSection = field(default_factory=ReturnsSection)
    server: ServerSection = field(default_factory=ServerSection)
    window: WindowSection = field(default_factory=WindowSection)
    printers: tuple[LaneSection, ...] = ()  # [[printers]]; empty: one lane from [printer]

    @property
    def data_path(self) -> Path:
        return Path(self.station.data_dir)

    @property
    def lanes(self) -> tuple[LaneSection, ...]:
        """The station's printers: `[[printers]]`, or the one of `[printer]` and `[readers]
        encoder`, named "1"."""
        if self.printers:
            return self.printers
        p = self.printer
        return (LaneSection("1", p.model, p.device, self.readers.encoder, p.poll_interval,
                            p.panel_pause, dict(p.options)),)

    def with_values(self, **sections: Any) -> Config:
        """A copy with some section values replaced (validated like a file's)."""
        return _build({**{f.name: {} for f in fields(self)}, **sections}, "<overrides>", self)


def _coerce(section: str, key: str, value: Any, default: Any, where: str) -> Any:
    want = type(default)
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, want) or (want is int and isinstance(value, bool)):
        raise ConfigError(
            f"{where}: [{section}] {key} must be {want.__name__}, got {type(value).__name__}"
        )
    return value


def _build(data: dict[str, Any], where: str, base: Config | None = None) -> Config:
    config, problems = collect(data, where, base)
    if problems:
        raise ConfigError("\n".join(problems))
    return config


def collect(data: dict[str, Any], where: str,
            base: Config | None = None) -> tuple[Config, list[str]]:
    """The configuration `data` describes and every problem in it (not only the first): a
    key that is wrong keeps its default so the rest can still be checked."""
    base = base or Config()
    problems: list[str] = []
    known = {f.name for f in fields(Config)}
    unknown = set(data) - known
    if unknown:
        problems.append(f"{where}: unknown section(s) {sorted(unknown)}; known: "
                        f"{sorted(known)}")
    sections: dict[str, Any] = {}
    for name in sorted(known):
        if name == "printers":
            sections[name] = _lanes(data.get(name), base.printers, where, problems)
            continue
        current = getattr(base, name)
        values = data.get(name, {})
        if not isinstance(values, dict):
            problems.append(f"{where}: [{name}] must be a table")
            values = {}
        sections[name] = _table(current, values, name, f"[{name}]", where, problems)
    config = Config(**sections)
    problems += [f"{where}: {problem}" for problem in check_values(config)]
    return config, problems


def _lanes(values: Any, current: tuple[LaneSection, ...], where: str,
           problems: list[str]) -> tuple[LaneSection, ...]:
    """`[[printers]]`: a list of tables, each checked like a section (None: keep `current`)."""
    if values is None or values == {}:
        return current
    if not isinstance(values, list) or not all(isinstance(v, dict) for v in values):
        problems.append(f"{where}: printers must be tables written [[printers]], one per printer")
        return current
    return tuple(_table(LaneSection(), table, "printers", f"[[printers]] #{index}", where,
                        problems) for index, table in enumerate(values, 1))


def _table(current: Any, values: dict[str, Any], name: str, label: str, where: str,
           problems: list[str]) -> Any:
    """`current` with the keys of one table over it; each problem named (a wrong key keeps
    its default, so the rest can still be checked)."""
    allowed = {f.name for f in fields(current)}
    bad = set(values) - allowed
    if bad:
        problems.append(f"{where}: {label} unknown key(s) {sorted(bad)}; "
                        f"known: {sorted(allowed)}")
    coerced = {}
    for key in sorted(set(values) & allowed):
        try:
            coerced[key] = _coerce(name, key, values[key], getattr(current, key), where)
        except ConfigError as exc:
            problems.append(str(exc).replace(f"[{name}]", label))
    return replace(current, **coerced)


def _check_lanes(config: Config) -> list[str]:
    from cardstation.registries import PRINTER_MODELS

    problems = []
    if len(config.printers) > MAX_LANES:
        problems.append(f"[[printers]] lists {len(config.printers)} printers; a station "
                        f"drives at most {MAX_LANES}")
    names: set[str] = set()
    encoders: set[str] = set()
    devices: set[str] = set()
    if config.printers and (config.printer != PrinterSection()
                            or config.readers.encoder != ReadersSection().encoder):
        problems.append("[printer] and [readers] encoder are not used when [[printers]] is "
                        "given: move their keys into the [[printers]] tables and remove them")
    for index, lane in enumerate(config.printers, 1):
        label = f"[[printers]] #{index}"
        if not lane.name.strip() or len(lane.name) > 32 or \
                not all(c.isalnum() or c in "-_" for c in lane.name):
            problems.append(f"{label} name {lane.name!r} must be letters, digits, - or _ "
                            "(it names the printer on the screen, in health and metrics)")
        elif lane.name in names:
            problems.append(f"{label} name {lane.name!r} is used twice")
        names.add(lane.name)
        if not lane.device:
            problems.append(f"{label} ({lane.name}) needs device (usb://... or socket://...)")
        elif lane.device in devices:
            problems.append(f"{label} ({lane.name}) device {lane.device!r} is another "
                            "printer's too: give each printer its own (usb://...?serial=...)")
        devices.add(lane.device)
        if not lane.encoder:
            problems.append(f"{label} ({lane.name}) needs encoder: the PC/SC reader name of "
                            "this printer's chip encoder (`cardstation doctor` lists readers)")
        elif lane.encoder in encoders:
            problems.append(f"{label} ({lane.name}) encoder {lane.encoder!r} is another "
                            "printer's too: each printer has its own chip encoder")
        encoders.add(lane.encoder)
        if lane.encoder and lane.encoder in (config.readers.psam, config.readers.desk):
            problems.append(f"{label} ({lane.name}) encoder {lane.encoder!r} is the PSAM's or "
                            "the desk reader's ([readers]): give the printer's own encoder")
        if lane.model not in PRINTER_MODELS:
            problems.append(f"{label} ({lane.name}) model {lane.model!r} is not known; "
                            "known: " + ", ".join(sorted(PRINTER_MODELS)))
        if lane.poll_interval <= 0 or lane.panel_pause < 0:
            problems.append(f"{label} ({lane.name}) poll_interval must be positive and "
                            "panel_pause 0 or more")
    return problems


def _host_port(value: str) -> bool:
    from cardstation.server.tls import split_host_port

    _host, port = split_host_port(value)
    return port.isdigit() and int(port) <= 65535


def check_values(config: Config) -> list[str]:
    """Every value that is wrong on its own or with the others."""
    from cardstation.registries import CMS_KINDS, PRINTER_MODELS

    problems = []
    keys = config.keys
    if keys.service not in ("psam", "hsm", "software"):
        problems.append("[keys] service must be \"psam\", \"hsm\" or \"software\"")
    if keys.service == "hsm":
        hsm = []
        host, sep, port = keys.hsm_address.rpartition(":")
        if not sep or not host or not port.isdigit():
            hsm.append("hsm_address must be host:port")
        if not keys.hsm_ca:
            hsm.append("hsm_ca is required (the machine is reached over TLS only)")
        if bool(keys.hsm_cert) != bool(keys.hsm_key):
            hsm.append("hsm_cert and hsm_key go together")
        if not keys.hsm_system_id:
            hsm.append("hsm_system_id is required")
        if not (len(keys.hsm_key_address) == 4 and keys.hsm_key_address.isalnum()):
            hsm.append("hsm_key_address is 4 characters (e.g. 0094)")
        if keys.hsm_timeout <= 0:
            hsm.append("hsm_timeout must be positive")
        if hsm:
            problems.append("[keys] service = \"hsm\": " + "; ".join(hsm))
    if config.cms.kind not in CMS_KINDS:
        problems.append(f"[cms] kind {config.cms.kind!r} is not known; known: "
                        + ", ".join(sorted(CMS_KINDS)))
    if config.printer.model not in PRINTER_MODELS:
        problems.append(f"[printer] model {config.printer.model!r} is not known; "
                        "known: " + ", ".join(sorted(PRINTER_MODELS)))
    if not config.cms.url.startswith(("http://", "https://")):
        problems.append("[cms] url must start with http:// or https://")
    if config.station.preview_retention_days < 0:
        problems.append("[station] preview_retention_days must be >= 0 (0 deletes a finished "
                        "card's preview at the next prune)")
    if config.station.personal_data_days < 0:
        problems.append("[station] personal_data_days must be >= 0 (0 keeps the personal data "
                        "of finished jobs)")
    if not 0 < config.photo.min_kb < config.photo.max_kb:
        problems.append("[photo] needs 0 < min_kb < max_kb")
    if config.cms.connect_timeout <= 0 or config.cms.read_timeout <= 0:
        problems.append("[cms] timeouts must be positive")
    if bool(config.cms.tls_cert) != bool(config.cms.tls_key):
        problems.append("[cms] tls_cert and tls_key go together")
    if keys.service == "software" and not keys.test_keys:
        problems.append("[keys] service = \"software\" holds published TEST keys and needs "
                        "test_keys = true; a real station uses \"psam\" or \"hsm\"")
    if not config.station.id.strip():
        problems.append("[station] id is empty: give the id the CMS knows this station by")
    for key, value, required in (("listen", config.server.listen, True),
                                 ("metrics_listen", config.server.metrics_listen, False)):
        if (value or required) and not _host_port(value):
            problems.append(f"[server] {key} {value!r} is not host:port (e.g. 127.0.0.1:50051)")
    if not 1 <= config.server.max_streams <= 20000:
        problems.append("[server] max_streams must be 1 to 20000 (each open watch stream holds "
                        "a worker)")
    if config.station.min_free_mb < 0:
        problems.append("[station] min_free_mb must be 0 or more")
    if not 0 < config.window.pin_timeout <= 600:
        problems.append("[window] pin_timeout must be 1 to 600 seconds")
    if not 0 < config.returns.base_delay <= config.returns.max_delay:
        problems.append("[returns] needs 0 < base_delay <= max_delay")
    if config.printer.poll_interval <= 0 or config.printer.panel_pause < 0:
        problems.append("[printer] poll_interval must be positive and panel_pause 0 or more")
    if (config.cms.tls_ca or config.cms.tls_cert) and not config.cms.url.startswith("https://"):
        problems.append("[cms] tls_ca / tls_cert are set but the url is not https://")
    return problems + _check_lanes(config)


#: where a configuration is looked for when none is given: this folder's, then the installed
#: station's (cardstation install)
DEFAULT_PLACES = (Path("cardstation.toml"), Path("/etc/cardstation/cardstation.toml"))


def load(path: str | Path | None = None) -> Config:
    """Read `path` (default: the first of DEFAULT_PLACES that exists, else the built-in
    defaults: the simulated devices, with a warning in the log)."""
    if path is None:
        path = next((p for p in DEFAULT_PLACES if p.exists()), None)
        if path is None:
            logging.getLogger(__name__).warning(
                "no --config and no %s: using the built-in defaults (simulated devices, data "
                "in var/station)", " or ".join(str(p) for p in DEFAULT_PLACES))
            return Config()
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a configuration file — give the path of "
                          "cardstation.toml") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: is not UTF-8 text — save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror}) — check its permissions"
                          ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return _build(data, str(path))
