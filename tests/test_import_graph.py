"""Dependencies point down (DESIGN.md, Layout): a walk of every import of every module.

Each top-level folder is a layer; a module may import its own layer and the layers listed for
it below. The composition root (the `cardstation` folder: CLI, config, wiring, logging set-up)
may import anything, and nothing below it imports it. Imports inside functions count too.
The edges still to be removed (issue 13, Build 2) are listed by name: removing one means
deleting it here, and any edge not listed fails the test.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ALLOWED: dict[str, set[str]] = {
    "redaction": set(),
    "drivers": {"redaction"},
    "personalization": {"redaction", "drivers"},
    "server": {"redaction", "drivers", "personalization", "protos"},
    "console": {"redaction", "protos"},
    "simulators": {"redaction", "drivers", "personalization"},
}
#: Upward or sideways edges not yet removed, as (importing file, imported module).
KNOWN: set[tuple[str, str]] = {
    ("drivers/pinpad/pinblock.py", "cardstation.personalization.keys.scheme"),
    ("server/runtime.py", "cardstation"),
    ("server/runtime.py", "cardstation.station"),
    ("console/client.py", "cardstation.server.errors"),
    ("simulators/process.py", "cardstation.config"),
    ("simulators/station.py", "cardstation.config"),
    ("simulators/printer/server.py", "cardstation.foreground"),
    ("simulators/idreader/server.py", "cardstation.foreground"),
    ("simulators/cms/server.py", "cardstation.foreground"),
}


def imports(path: Path) -> list[str]:
    """Absolute module names `path` imports (relative imports stay inside its package)."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def layer_of(module: str) -> str | None:
    """The layer a `cardstation...` module belongs to; None for other packages."""
    parts = module.split(".")
    if parts[0] != "cardstation":
        return None
    if len(parts) > 1 and (parts[1] in ALLOWED or parts[1] == "protos"):
        return parts[1]
    return "composition root"


def edges() -> set[tuple[str, str]]:
    found = set()
    for folder, allowed in ALLOWED.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            for module in imports(path):
                target = layer_of(module)
                if target is not None and target != folder and target not in allowed:
                    found.add((str(path.relative_to(ROOT)), module))
    return found


def test_no_module_imports_upward_or_sideways_beyond_the_known_edges() -> None:
    found = edges()
    assert not found - KNOWN, f"new upward/sideways imports: {sorted(found - KNOWN)}"
    assert not KNOWN - found, f"gone (delete them from KNOWN): {sorted(KNOWN - found)}"


def test_only_the_composition_root_touches_the_logging_set_up() -> None:
    """cardstation.logs installs the record factory; drivers, domain, server and simulators
    use cardstation.redaction, which installs nothing."""
    offenders = [(str(p.relative_to(ROOT)), m) for folder in ALLOWED
                 for p in (ROOT / folder).rglob("*.py") for m in imports(p)
                 if m == "cardstation.logs" or m.startswith("cardstation.logs.")]
    assert offenders == []


def test_the_redaction_layer_imports_only_the_standard_library() -> None:
    outside = {(str(p.relative_to(ROOT)), m) for p in (ROOT / "redaction").rglob("*.py")
               for m in imports(p)
               if m.split(".")[0] not in sys.stdlib_module_names and m != "__future__"}
    assert outside == set()


def test_the_walk_sees_an_upward_edge() -> None:
    """The check itself: a driver importing the domain or the CLI's logging is caught."""
    assert layer_of("cardstation.logs") == "composition root"
    assert layer_of("cardstation.personalization.pipeline") == "personalization"
    assert "personalization" not in ALLOWED["drivers"]
    assert "composition root" not in set().union(*ALLOWED.values())
