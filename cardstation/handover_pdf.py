"""The hand-over sheet (成品卡交接单) of a day's reconciliation as a PDF an operator prints and
signs: date, station id, the day's counts, a table of the cards made (masked ID number — first 6
and last 4 — and card number) and the signature lines 交接人 / 接收人.

`sheet_of` turns a DayReport into the exact text the PDF shows (a `Sheet`), and `render` lays
that out with reportlab; keeping the two apart lets a test check every string that reaches the
page (no full ID number) without parsing the PDF. The Chinese font is the one the card face
uses (`personalization.face.text.FONT_PATHS`, Debian's fonts-wqy-zenhei from `make setup`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cardstation.personalization.pdf_font import FONT, register_cjk_font
from cardstation.reconcile import DayReport


@dataclass(frozen=True)
class Sheet:
    """Every string on the page, in order."""

    title: str
    info: list[tuple[str, str]]
    counts: list[tuple[str, str]]
    card_header: tuple[str, ...]
    cards: list[tuple[str, ...]]
    signatures: list[str] = field(default_factory=list)

    def strings(self) -> list[str]:
        out = [self.title, *self.card_header, *self.signatures]
        for row in (*self.info, *self.counts, *self.cards):
            out.extend(row)
        return out


def _or_unknown(value: int | None) -> str:
    return "未知" if value is None else str(value)


def sheet_of(report: DayReport, printed_at: datetime | None = None) -> Sheet:
    printed_at = printed_at or datetime.now().astimezone()
    prints, ribbon, returns = report.prints, report.ribbon, report.returns
    rejected = "，".join(f"{code} {n}" for code, n in report.rejected_by_reason.items())
    counts = [
        ("制成卡数（已回盘确认）", str(report.made_count)),
        ("其中废卡", str(sum(card.spoiled for card in report.made))),
        ("退卡数（按原因）", f"{report.rejected}" + (f"（{rejected}）" if rejected else "")),
        ("退卡中用掉的卡", str(report.rejected_cards)),
        ("废卡数（当日标记）", str(report.spoiled)),
        ("补打卡面", str(report.reprinted)),
        ("空白卡使用", str(report.blank_cards_used)),
        ("打印次数：本站 / 打印机计数 / 差", f"{prints.get('station')} / "
         f"{_or_unknown(prints.get('printer'))} / {_or_unknown(prints.get('difference'))}"),
        ("色带用量：本站 / 色带计数 / 差", f"{ribbon.get('prints_used')} / "
         f"{_or_unknown(ribbon.get('ribbon'))} / {_or_unknown(ribbon.get('difference'))}"),
        ("色带剩余（日终）", _or_unknown(ribbon.get("remaining_end"))),
        ("数据回盘：当日确认 / 待回盘 / 失败", f"{returns.get('acknowledged', 0)} / "
         f"{returns.get('pending', 0)} / {returns.get('failed', 0)}"),
    ]
    cards = [(str(i), card.id_number_masked, card.card_number, card.done_at,
              "废卡" if card.spoiled else "")
             for i, card in enumerate(report.made, start=1)]
    return Sheet(
        title="社会保障卡成品卡交接单",
        info=[("日期", report.date), ("制卡点", report.station_id),
              ("打印时间", printed_at.strftime("%Y-%m-%d %H:%M"))],
        counts=counts,
        card_header=("序号", "身份证号（脱敏）", "社会保障卡号", "制成时间", "备注"),
        cards=cards,
        signatures=["交接人（签字）：________________    日期：____________",
                    "接收人（签字）：________________    日期：____________"],
    )


def render(sheet: Sheet, out: Path) -> Path:
    """Write the sheet as an A4 PDF at `out` (0600: it lists card numbers)."""
    import os

    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    register_cjk_font()
    title = ParagraphStyle("title", fontName=FONT, fontSize=16, leading=22, alignment=1)
    body = ParagraphStyle("body", fontName=FONT, fontSize=10, leading=14)
    grid = TableStyle([("FONTNAME", (0, 0), (-1, -1), FONT), ("FONTSIZE", (0, 0), (-1, -1), 9),
                       ("GRID", (0, 0), (-1, -1), 0.5, colors.grey),
                       ("VALIGN", (0, 0), (-1, -1), "MIDDLE")])
    header = TableStyle([("BACKGROUND", (0, 0), (-1, 0), colors.whitesmoke)])
    story = [Paragraph(sheet.title, title), Spacer(1, 4 * mm),
             Paragraph("　　".join(f"{k}：{v}" for k, v in sheet.info), body), Spacer(1, 4 * mm),
             Table(sheet.counts, colWidths=(70 * mm, 100 * mm), style=grid), Spacer(1, 6 * mm),
             Paragraph(f"成品卡明细（{len(sheet.cards)} 张）", body), Spacer(1, 2 * mm)]
    cards = Table([sheet.card_header, *sheet.cards] if sheet.cards else
                  [sheet.card_header, ("", "（无）", "", "", "")],
                  colWidths=(12 * mm, 50 * mm, 45 * mm, 28 * mm, 25 * mm), repeatRows=1)
    cards.setStyle(grid)
    cards.setStyle(header)
    story += [cards, Spacer(1, 14 * mm)]
    for line in sheet.signatures:
        story += [Paragraph(line, body), Spacer(1, 10 * mm)]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an older sheet of the same name may have been more open
    with os.fdopen(fd, "wb") as fh:
        SimpleDocTemplate(fh, pagesize=A4, title=sheet.title, author=sheet.info[1][1],
                          leftMargin=18 * mm, rightMargin=18 * mm).build(story)
    return out
