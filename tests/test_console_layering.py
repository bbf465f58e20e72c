"""The console is a client of the gRPC API: it never imports the domain or the drivers."""

from __future__ import annotations

import ast
from pathlib import Path

CONSOLE = Path(__file__).resolve().parent.parent / "console"


def test_console_imports_neither_personalization_nor_drivers() -> None:
    bad = []
    for path in CONSOLE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            bad += [f"{path.name}: {n}" for n in names
                    if n.startswith(("cardstation.personalization", "cardstation.drivers"))]
    assert not bad, bad
