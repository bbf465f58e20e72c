"""The adapters a station can be built from, by the name its configuration gives: one line per
printer model and per CMS kind, the way python-can picks a bus interface by name.

Each entry is "module:attribute", imported only when a station uses it, so an adapter's
dependencies are loaded only where it is configured. The attribute is a factory:
- a CMS kind: `(CmsSettings) -> Cms` (personalization/ports/cms.py); docs/cms-adapter.md says
  how to write one and how to run the conformance kit against it;
- a printer model: `(PrinterSettings) -> CardPrinter` (personalization/ports/printer.py).
`register_*` adds an entry at run time (a test's model, a site's plug-in).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

CMS_KINDS: dict[str, str] = {
    "reference-http": "cardstation.personalization.cms:CmsClient.from_settings",
}

PRINTER_MODELS: dict[str, str] = {
    "hiti-cs220e": "cardstation.personalization.printers.hiti:HitiCardPrinter.from_settings",
}


class UnknownAdapter(LookupError):
    pass


def _load(table: dict[str, str], kind: str, what: str) -> Callable[..., Any]:
    try:
        target = table[kind]
    except KeyError:
        raise UnknownAdapter(f"no {what} {kind!r}; known: {', '.join(sorted(table))}") from None
    module_name, _, attribute = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        obj = getattr(obj, part)
    factory: Callable[..., Any] = obj
    return factory


def cms_factory(kind: str) -> Callable[..., Any]:
    return _load(CMS_KINDS, kind, "CMS kind")


def printer_factory(model: str) -> Callable[..., Any]:
    return _load(PRINTER_MODELS, model, "printer model")


def register_cms_kind(kind: str, target: str) -> None:
    CMS_KINDS[kind] = target


def register_printer_model(model: str, target: str) -> None:
    PRINTER_MODELS[model] = target
