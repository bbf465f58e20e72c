"""Domain rules for the data written to a social security card, one module per item.

Every `check_*` function returns a list of `Finding` and never raises on bad input; helpers that
compute or convert (`id_check_char`, `card_number_check_char`, `split_name_gbk`,
`parse_card_id_code`) raise ValueError on input they cannot handle. Sources are named in each
module (reference/ssc-chip.md §5-6, reference/business-flows.md §4).
"""

from cardstation.personalization.rules.card_id_code import (
    SSC_AID,
    CardIdCode,
    check_card_id_code,
    parse_card_id_code,
)
from cardstation.personalization.rules.card_number import (
    card_number_check_char,
    check_card_number,
    is_valid_card_number,
    normalize_card_number,
)
from cardstation.personalization.rules.codes import (
    NATION_CODES,
    SEX_CODES,
    check_birth_date,
    check_date,
    check_nation,
    check_region_code,
    check_sex,
    parse_yyyymmdd,
)
from cardstation.personalization.rules.id_number import (
    IdNumberParts,
    check_id_number,
    id_check_char,
    is_valid_id_number,
    normalize_id_number,
    parse_id_number,
)
from cardstation.personalization.rules.name import check_name, join_name_gbk, split_name_gbk
from cardstation.personalization.rules.photo import (
    DEFAULT_PHOTO_SPEC,
    PHOTO_SPEC_SEED_000,
    PHOTO_SPEC_SEED_001,
    PhotoSpec,
    border_luminance,
    check_photo,
)

__all__ = [
    "DEFAULT_PHOTO_SPEC",
    "NATION_CODES",
    "PHOTO_SPEC_SEED_000",
    "PHOTO_SPEC_SEED_001",
    "SEX_CODES",
    "SSC_AID",
    "CardIdCode",
    "IdNumberParts",
    "PhotoSpec",
    "border_luminance",
    "card_number_check_char",
    "check_birth_date",
    "check_card_id_code",
    "check_card_number",
    "check_date",
    "check_id_number",
    "check_name",
    "check_nation",
    "check_photo",
    "check_region_code",
    "check_sex",
    "id_check_char",
    "is_valid_card_number",
    "is_valid_id_number",
    "join_name_gbk",
    "normalize_card_number",
    "normalize_id_number",
    "parse_card_id_code",
    "parse_id_number",
    "parse_yyyymmdd",
    "split_name_gbk",
]
