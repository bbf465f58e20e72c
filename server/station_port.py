"""What the server needs of an assembled station: its parts, declared here so the runtime
depends on this shape and not on the composition root that builds it (cardstation/station.py
builds a `Station` that has these attributes)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from cardstation.personalization.journal import Journal
from cardstation.personalization.keys.service import KeyService
from cardstation.personalization.outbox import Outbox, ReturnWorker
from cardstation.personalization.pipeline import Pipeline
from cardstation.personalization.ports.cms import Cms
from cardstation.personalization.ports.printer import CardPrinter


class LanePart(Protocol):
    """One printer with its chip encoder and the pipeline that drives them."""

    name: str
    printer: CardPrinter
    pipeline: Pipeline
    encoder: str  # the encoder's PC/SC reader name or pattern
    device: str  # the printer's address
    model: str


class StationParts(Protocol):
    # the station's configuration (cardstation.config.Config): read for device names and ids
    config: Any
    journal: Journal
    outbox: Outbox
    cms: Cms
    printer: CardPrinter
    keys: KeyService
    pipeline: Pipeline
    worker: ReturnWorker
    window: Any  # the window's devices (cardstation.station.Window), None without them
    lanes: Sequence[LanePart]  # the printers, the first one's are `printer` and `pipeline`

    def close(self) -> None: ...
