"""Receipts (回执) of the window's card-life operations as PDFs the console prints: new
application, fee and mark, hand-over and enablement, loss report, lift, cancellation,
replacement. Masked as the logs are: the ID number shows its first 6 and last 4 characters; no
bank account, phone or address is printed.

`receipt_of` builds every string of the page (a `Receipt`), `render_receipt` lays them out with
reportlab (the CJK font of personalization/pdf_font.py); a test checks the strings without
parsing the PDF, as for the hand-over sheet.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import datetime

from cardstation.drivers.redaction import mask_id_number
from cardstation.personalization.ports.cms import CardLife

#: operation -> the receipt's title (the CMS's own names of the businesses)
BUSINESSES = {
    "application": "社会保障卡新增申请回执",
    "fee": "社会保障卡交费登记回执",
    "mark": "社会保障卡即制卡标注回执",
    "hand_over": "社会保障卡领卡启用回执",
    "loss_temporary": "社会保障卡临时挂失回执",
    "loss_formal": "社会保障卡正式挂失回执",
    "lift": "社会保障卡解除挂失回执",
    "cancel": "社会保障卡注销回执",
    "replacement": "社会保障卡补换卡申请回执",
}
#: CardLife.state -> how the receipt names it
STATE_NAMES = {
    "applied": "已申请（待交费、待标注）", "ready": "待制卡", "in_making": "制卡中",
    "made": "已制卡（待领卡启用）", "failed": "制卡失败（待恢复申请）", "active": "正常（已启用）",
    "lost_temporary": "临时挂失", "lost_formal": "正式挂失", "cancelled": "已注销",
}


@dataclass(frozen=True)
class Receipt:
    """Every string on the page, in order."""

    title: str
    rows: list[tuple[str, str]]
    notes: list[str] = field(default_factory=list)
    signatures: list[str] = field(default_factory=list)

    def strings(self) -> list[str]:
        return [self.title, *(s for row in self.rows for s in row), *self.notes,
                *self.signatures]


def receipt_of(operation: str, life: CardLife, *, station_id: str, operator: str,
               application_number: str = "", reason: str = "",
               at: datetime | None = None) -> Receipt:
    """The receipt of `operation` (a BUSINESSES key) that left the card as `life`."""
    at = at or datetime.now().astimezone()
    rows = [("办理业务", BUSINESSES[operation].removeprefix("社会保障卡").removesuffix("回执")),
            ("姓名", life.name), ("社会保障号码", mask_id_number(life.id_number))]
    if life.card_number:
        rows.append(("社会保障卡号", life.card_number))
    if application_number:
        rows.append(("申请编号", application_number))
    rows.append(("卡状态", STATE_NAMES.get(life.state, life.state)))
    if life.bank_name:
        rows.append(("服务银行", life.bank_name))
    if reason:
        rows.append(("原因", reason))
    rows += [("办理网点", station_id), ("经办人", operator),
             ("办理时间", at.strftime("%Y-%m-%d %H:%M"))]
    notes = []
    if operation == "replacement":
        notes.append(f"原卡 {life.replaces} 已停用；新卡的金融账户（银行卡号）将变更，"
                     "请持新卡到合作银行办理激活。")
    if operation == "loss_temporary":
        notes.append("临时挂失有期限，请及时办理解挂或正式挂失。")
    if operation == "hand_over":
        notes.append("请妥善保管社会保障卡，修改初始密码。")
    return Receipt(title=BUSINESSES[operation], rows=rows, notes=notes,
                   signatures=["申请人（签字）：________________",
                               "经办人（签字）：________________"])


def render_receipt(receipt: Receipt) -> bytes:
    """The receipt as an A5 PDF."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A5
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    from cardstation.personalization.pdf_font import register_cjk_font

    font = register_cjk_font()
    title = ParagraphStyle("title", fontName=font, fontSize=14, leading=20, alignment=1)
    body = ParagraphStyle("body", fontName=font, fontSize=9, leading=13)
    grid = TableStyle([("FONTNAME", (0, 0), (-1, -1), font), ("FONTSIZE", (0, 0), (-1, -1), 9),
                       ("GRID", (0, 0), (-1, -1), 0.5, colors.grey),
                       ("VALIGN", (0, 0), (-1, -1), "MIDDLE")])
    story = [Paragraph(receipt.title, title), Spacer(1, 4 * mm),
             Table(receipt.rows, colWidths=(32 * mm, 84 * mm), style=grid), Spacer(1, 4 * mm)]
    story += [Paragraph(note, body) for note in receipt.notes]
    story.append(Spacer(1, 8 * mm))
    for line in receipt.signatures:
        story += [Paragraph(line, body), Spacer(1, 6 * mm)]
    out = io.BytesIO()
    SimpleDocTemplate(out, pagesize=A5, title=receipt.title, leftMargin=14 * mm,
                      rightMargin=14 * mm, topMargin=12 * mm).build(story)
    return out.getvalue()
