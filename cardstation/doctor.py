"""`cardstation doctor`: every row of the operators' fault table and every device of the
configuration, looked at now, as a checklist in Chinese (English with `--lang en`), each failure
with its remedy. The exit code says whether the station can make cards: 0 yes, 1 no.

The rows follow reference/business-flows.md section 2 (seed 001): both USB cables (the printer
on USB *and* its encoder reader), the ribbon chip, the reader, the PSAM; then what the station
software itself needs: pcscd, the CMS and its certificate, the clock, room for the journal.
Devices are opened here the way the station opens them (the same adapters), so a row that
passes here passes for the station. Nothing is changed; no card is moved.
"""

from __future__ import annotations

import email.utils
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cardstation.config import Config, LaneSection

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass
class Row:
    key: str
    title: dict[str, str]  # locale -> the row's name
    status: str = OK
    detail: str = ""  # what was found (English from the devices, or the locale's words)
    remedy: dict[str, str] = field(default_factory=dict)
    blocks: bool = True  # a failure here stops cards from being made

    def fail(self, detail: str, zh: str, en: str, status: str = FAIL) -> Row:
        self.status, self.detail, self.remedy = status, detail, {"zh_CN": zh, "en": en}
        return self


def _row(key: str, zh: str, en: str, *, blocks: bool = True) -> Row:
    return Row(key, {"zh_CN": zh, "en": en}, blocks=blocks)


def run_checks(config: Config) -> list[Row]:
    """Every row, in the order the checklist shows them."""
    rows: list[Row] = []
    readers = _pcscd(rows)
    printers = []
    for lane in config.lanes:  # each printer with its encoder and ribbon
        named = _Named(lane, single=len(config.lanes) == 1)
        printer = _printer(named, rows)
        _cables(named, readers, printer, rows)
        if printer is not None:
            _ribbon(named, printer, rows)
            printers.append(printer)
        else:
            rows.append(named.row("ribbon", "色带", "ribbon").fail(
                "not checked: the printer is not connected", "先接好打印机（见上面）",
                "connect the printer first (above)"))
    _keys(config, readers, rows)
    _desk(config, readers, rows)
    _cms(config, rows)
    _disk(config, rows)
    _data_key(config, rows)
    _vpcd(rows)
    for printer in printers:
        printer.close()
    return rows


class _Named:
    """One printer's rows: keys and labels carry its name at a station with several."""

    def __init__(self, lane: LaneSection, single: bool) -> None:
        self.lane, self.single = lane, single

    def row(self, key: str, zh: str, en: str) -> Row:
        if self.single:
            return _row(key, zh, en)
        name = self.lane.name
        return _row(f"{key}.{name}", f"{zh}（打印机 {name}）", f"{en} (printer {name})")


def _pcscd(rows: list[Row]) -> list[str] | None:
    from cardstation.drivers.pcsc.errors import PcscError
    from cardstation.drivers.pcsc.readers import PcscContext

    row = _row("pcscd", "智能卡服务（pcscd）", "smart-card service (pcscd)")
    rows.append(row)
    try:
        with PcscContext() as ctx:
            names = list(ctx.readers())
    except PcscError as exc:
        row.fail(exc.cause, "启动智能卡服务：sudo systemctl start pcscd.socket，或重启电脑",
                 "start the smart-card service: sudo systemctl start pcscd.socket, or "
                 "restart the PC")
        return None
    row.detail = f"{len(names)} reader(s)"
    return names


def _find(pattern: str, names: list[str] | None) -> str | None:
    """The reader the station would pick for `pattern` among `names` (None: no such reader)."""
    from cardstation.drivers.pcsc.readers import match_reader

    try:
        return match_reader(pattern, names or [])
    except re.error:
        return None


def _printer(named: _Named, rows: list[Row]) -> Any:
    from cardstation.personalization.ports.printer import PrinterFault, PrinterSettings
    from cardstation.registries import printer_factory

    row = named.row("printer", "打印机", "printer")
    rows.append(row)
    p = named.lane
    printer = printer_factory(p.model)(PrinterSettings(p.device, p.poll_interval,
                                                       p.panel_pause, dict(p.options)))
    try:
        condition = printer.status()
    except PrinterFault as exc:
        row.fail(f"{p.device}: {exc.cause}",
                 "检查打印机电源和它的USB线（打印机有两根USB线，都要插好），然后再查一次",
                 "check the printer's power and its USB cable (the printer has two USB "
                 "cables: plug in both), then check again")
        printer.close()
        return None
    blocking = [a for a in condition.alerts if a.blocks]
    if blocking:
        from cardstation.console.i18n import Translator

        alert = blocking[0]
        zh_cause, zh_remedy = Translator("zh_CN").fault(alert.code, alert.cause, alert.remedy)
        row.fail(f"{alert.code}: {alert.cause}", f"{zh_cause} {zh_remedy}", alert.remedy)
    else:
        row.detail = f"{p.model} at {p.device}" + (" (busy)" if condition.busy else "")
    return printer


def _cables(named: _Named, readers: list[str] | None, printer: Any, rows: list[Row]) -> None:
    """Seed 001's first row: the printer and its chip encoder are two USB devices."""
    row = named.row("encoder", "芯片读写器（打印机的第二根USB线）", "chip encoder (the "
                    "printer's second USB cable)")
    rows.append(row)
    if readers is None:
        row.fail("pcscd is not running", "先启动智能卡服务（见上一行）", "start pcscd first "
                 "(the row above)")
        return
    encoder = named.lane.encoder
    name = _find(encoder, readers)
    if name is None:
        printer_ok = "the printer answers on USB" if printer is not None else \
            "the printer does not answer either"
        row.fail(f"no reader matches {encoder!r} ({printer_ok}); readers: "
                 f"{', '.join(readers) or 'none'}",
                 "打印机的两根USB线都要插好：一根是打印，一根是芯片读写器；还不行就重装打印机"
                 "驱动，或检查 cardstation.toml 里这台打印机的 encoder 名称",
                 "plug in both of the printer's USB cables (one prints, one is the chip "
                 "encoder); if it persists reinstall the printer driver, or check this "
                 "printer's encoder in cardstation.toml ([readers] or [[printers]])")
        return
    row.detail = name


def _ribbon(named: _Named, printer: Any, rows: list[Row]) -> None:
    from cardstation.personalization.ports.printer import PrinterFault

    row = named.row("ribbon", "色带", "ribbon")
    rows.append(row)
    try:
        ribbon = printer.ribbon()
    except PrinterFault as exc:
        row.fail(exc.cause, "检查色带是否装好", "check that the ribbon is loaded")
        return
    if not ribbon.chip_present:
        row.fail("the ribbon's chip is not detected", "更换色带，或把色带芯片重新插好",
                 "replace the ribbon or reseat its chip")
    elif ribbon.remaining == 0:
        row.fail("the ribbon is used up", "换一卷新色带", "load a new ribbon")
    elif ribbon.remaining is not None and ribbon.remaining < 20:
        row.fail(f"{ribbon.remaining} prints left", "准备一卷新色带（剩余不多）",
                 "have a new ribbon ready (few prints left)", status=WARN)
    else:
        left = "?" if ribbon.remaining is None else str(ribbon.remaining)
        row.detail = f"{ribbon.type_name}, {left} prints left"


def _keys(config: Config, readers: list[str] | None, rows: list[Row]) -> None:
    service = config.keys.service
    if service == "software":
        row = _row("keys", "密钥（测试用）", "keys (test only)", blocks=False)
        rows.append(row.fail("the software key service holds published TEST keys",
                             "正式制卡必须用PSAM或加密机：改 cardstation.toml 的 [keys] service",
                             "real cards need a PSAM or the encryption machine: set [keys] "
                             "service", status=WARN))
        return
    if service == "hsm":
        _hsm(config, rows)
        return
    row = _row("psam", "PSAM卡（密钥卡）", "PSAM (key module)")
    rows.append(row)
    if readers is None:
        row.fail("pcscd is not running", "先启动智能卡服务（见第一行）",
                 "start pcscd first (the first row)")
        return
    name = _find(config.readers.psam, readers)
    if name is None:
        row.fail(f"no reader matches {config.readers.psam!r}",
                 "检查PSAM读卡器的USB线，或 cardstation.toml 里 [readers] psam 的名称",
                 "check the PSAM reader's USB cable, or [readers] psam in cardstation.toml")
        return
    from cardstation.drivers.pcsc.transport import PcscTransport
    from cardstation.personalization.keys.service import PsamKeyService

    def connect() -> PcscTransport:
        transport = PcscTransport(name)
        transport.connect()
        return transport

    keys = PsamKeyService(connect)
    try:
        row.detail = f"{name}: terminal {keys.terminal_number()}"
    except Exception as exc:
        row.fail(f"{name}: {getattr(exc, 'cause', exc)}",
                 "把PSAM卡插好（芯片朝里），或换一张；确认是本发卡地区的PSAM卡",
                 "seat the PSAM (chip first) or try another; it must belong to this card "
                 "issuer")
    finally:
        keys.close()


def _hsm(config: Config, rows: list[Row]) -> None:
    from cardstation.station import build_hsm_key_service

    row = _row("hsm", "加密机", "encryption machine (HSM)")
    rows.append(row)
    try:
        keys = build_hsm_key_service(config)
        try:
            keys.probe()
        finally:
            keys.close()
        row.detail = config.keys.hsm_address
    except Exception as exc:
        row.fail(str(exc), "检查到加密机的网络和证书（[keys] hsm_*）",
                 "check the network to the encryption machine and its certificates ([keys] "
                 "hsm_*)")


def _desk(config: Config, readers: list[str] | None, rows: list[Row]) -> None:
    row = _row("desk", "桌面读卡器（窗口业务）", "desk reader (window services)", blocks=False)
    rows.append(row)
    if readers is None:
        row.fail("pcscd is not running", "先启动智能卡服务（见第一行）",
                 "start pcscd first (the first row)", status=WARN)
        return
    name = _find(config.readers.desk, readers)
    if name is None:
        row.fail(f"no reader matches {config.readers.desk!r}",
                 "读卡器不兼容或没插好：换一个读卡器，或检查 [readers] desk 的名称",
                 "the reader is missing or not compatible: try another, or check [readers] "
                 "desk", status=WARN)
    else:
        row.detail = name


def _cms(config: Config, rows: list[Row]) -> None:
    from cardstation.personalization.ports.cms import CmsError, CmsSettings
    from cardstation.registries import cms_factory
    from cardstation.station import _read_secret

    row = _row("cms", "省卡管系统", "card-management system (CMS)")
    clock = _row("clock", "电脑时间", "clock")
    rows += [row, clock]
    c = config.cms
    try:
        cms = cms_factory(c.kind)(CmsSettings(
            c.url, config.station.id, c.connect_timeout, c.read_timeout, c.tls_ca, c.tls_cert,
            c.tls_key, _read_secret(c.token_file, "[cms] token_file"), dict(c.options)))
    except (OSError, ValueError) as exc:
        row.fail(str(exc), "检查 cardstation.toml 里 [cms] 的证书和令牌文件",
                 "check the certificate and token files of [cms] in cardstation.toml")
        return
    probe: Callable[[], dict[str, Any]] | None = getattr(cms, "probe", None)
    if probe is None:
        row.fail(f"the {c.kind} adapter cannot be checked without making a request",
                 "用制卡流程试一次", "try it with a job", status=WARN)
        return
    try:
        facts = probe()
    except CmsError as exc:
        cause, _, remedy = str(exc).partition(" — ")
        row.fail(f"{c.url}: {cause}",
                 "检查网络和卡管系统地址（[cms] url）；回盘数据会保留并自动重发",
                 remedy or "check the network and [cms] url")
        _clock("", clock)
        if clock.status == OK:
            clock.fail(f"{clock.detail}; not compared with the CMS (unreachable)",
                       "卡管系统连上后再查一次时间", "check again once the CMS answers",
                       status=WARN)
        return
    row.detail = c.url
    expires = facts.get("cert_not_after")
    if expires is not None and expires - time.time() < 30 * 86400:
        days = int((expires - time.time()) // 86400)
        row.fail(f"the CMS's TLS certificate expires in {days} day(s)",
                 "请卡管中心及时更换证书", "ask the CMS operators to renew their certificate",
                 status=WARN if days > 0 else FAIL)
    _clock(facts.get("date", ""), clock)


def _clock(date_header: str, row: Row) -> None:
    now = time.time()
    if not 1_704_067_200 < now < 4_102_444_800:  # 2024 .. 2100: a PC whose clock was reset
        row.fail(time.strftime("%Y-%m-%d %H:%M", time.localtime(now)),
                 "把电脑时间改对（发卡日期和证书都依赖它）",
                 "set the PC's clock (card dates and certificates depend on it)")
        return
    if date_header:
        try:
            skew = now - email.utils.parsedate_to_datetime(date_header).timestamp()
        except (TypeError, ValueError):
            skew = 0.0
        if abs(skew) > 300:
            row.fail(f"{skew:+.0f} s from the CMS's clock",
                     "校准电脑时间（与卡管系统相差超过5分钟）",
                     "set the PC's clock (more than 5 minutes from the CMS's)")
            return
        row.detail = f"{skew:+.0f} s from the CMS"
    else:
        row.detail = time.strftime("%Y-%m-%d %H:%M", time.localtime(now))


def _disk(config: Config, rows: list[Row]) -> None:
    from cardstation.personalization.storage import free_bytes

    row = _row("disk", "数据盘空间", "disk space for the journal")
    rows.append(row)
    folder = config.data_path
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    free = free_bytes(existing)
    need = config.station.min_free_mb * 1024 * 1024
    if free < need:
        row.fail(f"{free // 2**20} MB free at {existing}, {config.station.min_free_mb} MB "
                 "needed", "清理这块磁盘（不要删除数据目录里的文件），或换大一点的磁盘",
                 "free space on that disk (never delete the files of the data folder)")
    elif not os.access(existing, os.W_OK):
        row.fail(f"{existing} cannot be written by this user",
                 "让县里信息人员把数据目录交给制卡软件的用户", "give the data folder to the "
                 "station's user")
    else:
        row.detail = f"{free // 2**20} MB free at {existing}"


def _data_key(config: Config, rows: list[Row]) -> None:
    """The data key the journal's personal fields are sealed under: there, 0600, readable."""
    from cardstation.personalization.datakey import DataKeyError, KeyFile

    row = _row("data_key", "数据密钥", "data key (personal data at rest)")
    rows.append(row)
    key_file = KeyFile(config.data_path / "data.key")
    journal = config.data_path / "journal.sqlite"
    if not key_file.exists():
        if journal.exists():
            row.fail(f"{key_file.path} is missing; the journal's personal data cannot be read",
                     "从本机备份中取回 data.key 放回数据目录，再启动",
                     "put data.key back from the station's backup, then start")
        else:
            row.detail = f"{key_file.path} is made at the first start"
        return
    try:
        keys = key_file.load()
    except DataKeyError as exc:
        row.fail(str(exc), "按提示处理密钥文件（chmod 600，或从备份取回）",
                 "fix the key file as the message says (chmod 600, or restore it)")
        return
    row.detail = f"{key_file.path} mode 0600, key {keys.current}" + (
        f"; rotation unfinished (old {', '.join(keys.old)}): run `cardstation datakey rotate`"
        if keys.old else "")


def _vpcd(rows: list[Row]) -> None:
    from cardstation.vpcd_check import check_vpcd

    row = _row("vpcd", "虚拟读卡器（只用于测试）", "virtual reader (tests only)", blocks=False)
    rows.append(row)
    findings = check_vpcd(real_station=False)
    if findings:
        row.fail(findings[0].message, "正式制卡机上不能装虚拟读卡器：卸载 vsmartcard-vpcd",
                 "a real station must not have the virtual reader: purge vsmartcard-vpcd",
                 status=WARN)


def can_issue(rows: list[Row]) -> bool:
    return not any(r.status == FAIL and r.blocks for r in rows)


def render(rows: list[Row], lang: str = "zh_CN") -> str:
    lang = "en" if lang.startswith("en") else "zh_CN"
    marks = {OK: "✓", WARN: "!", FAIL: "✗"}
    lines = []
    for r in rows:
        line = f"{marks[r.status]} {r.title[lang]}"
        if r.detail:
            line += f"：{r.detail}" if lang == "zh_CN" else f": {r.detail}"
        lines.append(line)
        if r.status != OK and r.remedy:
            lines.append(("    处理：" if lang == "zh_CN" else "    remedy: ") + r.remedy[lang])
    verdict = can_issue(rows)
    if lang == "zh_CN":
        lines.append("可以制卡。" if verdict else "现在不能制卡：先按上面标 ✗ 的行处理。")
    else:
        lines.append("The station can make cards." if verdict else
                     "The station cannot make cards now: fix the rows marked ✗ first.")
    return "\n".join(lines)
