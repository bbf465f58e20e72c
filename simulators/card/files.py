"""Card file system: DF, transparent EF, variable-record EF with SIMPLE-TLV records.

Access rules are declarative (:class:`AccessRule`) and checked against the volatile
:class:`SecurityState`. Item definitions of record files are tables of :class:`ItemDef`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from .sw import SW, SwError
from .tlv import TlvError, parse_simple_tlv, simple_tlv

Fmt = Literal["an", "cn", "b"]


@dataclass
class SecurityState:
    """Volatile security state: keys authenticated by EXTERNAL AUTHENTICATE, PIN verified."""

    keys: set[int] = field(default_factory=set)
    pin_verified: bool = False

    def clear(self) -> None:
        self.keys.clear()
        self.pin_verified = False


@dataclass(frozen=True)
class AccessRule:
    """An access condition: always, or any of (PIN verified, one of the key ids authenticated).

    An empty rule (the default) is "never".
    """

    always: bool = False
    pin: bool = False
    keys: frozenset[int] = frozenset()

    def allows(self, state: SecurityState) -> bool:
        return self.always or (self.pin and state.pin_verified) or bool(self.keys & state.keys)


FREE = AccessRule(always=True)
NEVER = AccessRule()


def by_key(*kids: int, pin: bool = False) -> AccessRule:
    """Rule satisfied by any of the ext-auth key ids (or the PIN when ``pin``)."""
    return AccessRule(pin=pin, keys=frozenset(kids))


@dataclass(frozen=True)
class ItemDef:
    """One data item of a record file: tag, maximum value length, format, label.

    ``read`` overrides the file's read rule for this item (e.g. EF05 01/03/07 on 3rd-gen cards).
    """

    tag: int
    max_len: int
    fmt: Fmt
    label: str
    read: AccessRule | None = None

    def blank(self) -> bytes:
        """Value of an unwritten item: cn padded with F, an/b with 00 [C2 §5.2 padding rules]."""
        return (b"\xff" if self.fmt == "cn" else b"\x00") * self.max_len


class Node:
    """Common part of DFs and EFs. ``label`` names the node in paths (JSON persistence)."""

    def __init__(self, label: str, fid: int | None = None, name: bytes | None = None) -> None:
        self.label = label
        self.fid = fid
        self.name = name
        self.parent: DF | None = None

    @property
    def path(self) -> str:
        return self.label if self.parent is None else f"{self.parent.path}/{self.label}"

    def is_within(self, df: DF) -> bool:
        node: Node | None = self
        while node is not None:
            if node is df:
                return True
            node = node.parent
        return False


class DF(Node):
    """A dedicated file (MF, DDF, ADF). ``proprietary`` is the FCI A5 template content."""

    def __init__(
        self,
        label: str,
        fid: int | None = None,
        name: bytes | None = None,
        proprietary: bytes = b"",
    ) -> None:
        super().__init__(label, fid, name)
        self.children: list[Node] = []
        self.proprietary = proprietary

    def add(self, *nodes: Node) -> DF:
        for node in nodes:
            node.parent = self
            self.children.append(node)
        return self

    def child_by_fid(self, fid: int) -> Node | None:
        return next((c for c in self.children if c.fid == fid), None)

    def ef_by_sfi(self, sfi: int) -> EF | None:
        return next((c for c in self.children if isinstance(c, EF) and c.sfi == sfi), None)

    def walk(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            if isinstance(child, DF):
                yield from child.walk()
            else:
                yield child


class EF(Node):
    """An elementary file with read and write access rules."""

    def __init__(
        self,
        label: str,
        fid: int | None,
        sfi: int | None,
        read: AccessRule,
        write: AccessRule,
    ) -> None:
        super().__init__(label, fid)
        self.sfi = sfi
        self.read = read
        self.write = write

    def dump(self) -> dict[str, object]:
        raise NotImplementedError

    def load(self, state: dict[str, object]) -> None:
        raise NotImplementedError


class TransparentEF(EF):
    """Binary EF of a fixed size (READ/UPDATE BINARY)."""

    def __init__(
        self,
        label: str,
        fid: int | None,
        sfi: int | None,
        size: int,
        read: AccessRule,
        write: AccessRule,
    ) -> None:
        super().__init__(label, fid, sfi, read, write)
        self.size = size
        self.data = bytearray(size)

    def dump(self) -> dict[str, object]:
        return {"data": self.data.hex().upper()}

    def load(self, state: dict[str, object]) -> None:
        data = bytes.fromhex(str(state["data"]))
        if len(data) != self.size:
            raise ValueError(f"{self.path}: {len(data)} bytes, expected {self.size}")
        self.data = bytearray(data)


class RecordEF(EF):
    """Variable-length record EF. With ``items`` every record is a SIMPLE-TLV whose tag and
    maximum length come from the table (record n = items[n-1]); without, records are raw
    (e.g. EMV ``70`` templates) and not updatable."""

    def __init__(
        self,
        label: str,
        fid: int | None,
        sfi: int | None,
        read: AccessRule,
        write: AccessRule,
        items: Sequence[ItemDef] = (),
        records: Sequence[bytes] = (),
    ) -> None:
        super().__init__(label, fid, sfi, read, write)
        self.items: tuple[ItemDef, ...] = tuple(items)
        if self.items:
            self.records = [simple_tlv(i.tag, i.blank()) for i in self.items]
        else:
            self.records = [bytes(r) for r in records]

    # --- addressing ---
    def index_by_number(self, number: int) -> int:
        if not 1 <= number <= len(self.records):
            raise SwError(SW.RECORD_NOT_FOUND)
        return number - 1

    def index_by_tag(self, tag: int) -> int:
        for i, record in enumerate(self.records):
            if record and record[0] == tag:
                return i
        raise SwError(SW.RECORD_NOT_FOUND)

    def read_rule(self, index: int) -> AccessRule:
        if self.items and self.items[index].read is not None:
            return self.items[index].read  # type: ignore[return-value]
        return self.read

    def item(self, index: int) -> ItemDef | None:
        return self.items[index] if self.items else None

    # --- content ---
    def validated_record(self, index: int, data: bytes) -> bytes:
        """Check an UPDATE RECORD data field for record ``index`` and return the record to store.

        Raises 6700 for a malformed TLV or a value longer than the item's length, 6A80 for a tag
        that is not the record's, 6981 for a file without item definitions.
        """
        item = self.item(index)
        if item is None:
            raise SwError(SW.FILE_STRUCTURE)
        try:
            tag, value = parse_simple_tlv(data)
        except TlvError:
            raise SwError(SW.WRONG_LENGTH) from None
        if tag != item.tag:
            raise SwError(SW.WRONG_DATA)
        if len(value) > item.max_len:
            raise SwError(SW.WRONG_LENGTH)
        return simple_tlv(tag, value)

    def value_of(self, tag: int) -> bytes:
        """Value of the first record with ``tag`` (for tests and factories)."""
        return parse_simple_tlv(self.records[self.index_by_tag(tag)])[1]

    def set_value(self, tag: int, value: bytes) -> None:
        """Write an item directly (factory use); same validation as UPDATE RECORD."""
        index = self.index_by_tag(tag)
        self.records[index] = self.validated_record(index, simple_tlv(tag, value))

    def dump(self) -> dict[str, object]:
        return {"records": [r.hex().upper() for r in self.records]}

    def load(self, state: dict[str, object]) -> None:
        raw = state["records"]
        if not isinstance(raw, list):
            raise ValueError(f"{self.path}: records must be a list")
        records = [bytes.fromhex(str(r)) for r in raw]
        if self.items:
            if len(records) != len(self.items):
                raise ValueError(f"{self.path}: {len(records)} records, expected {len(self.items)}")
            records = [self.validated_record(i, r) for i, r in enumerate(records)]
        self.records = records
