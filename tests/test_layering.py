"""Dependencies point down (DESIGN.md "Layout"): drivers -> personalization -> server, the
console a client of the API, the simulators on the devices' side, and nothing below the
composition root (the `cardstation/` folder: CLI, configuration, registries, wiring) importing
it. Every import statement is read, including the ones inside functions."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: layer (a folder, i.e. a subpackage of `cardstation`) -> the layers it may import
#: (the redaction that every layer below the root uses is drivers/redaction, at the bottom)
ALLOWED = {
    "protos": {"protos"},
    "drivers": {"drivers"},
    "personalization": {"drivers", "personalization"},
    "server": {"protos", "drivers", "personalization", "server"},
    "console": {"protos", "console"},
    "simulators": {"drivers", "personalization", "simulators"},
}


def _layer(module: str) -> str | None:
    """The layer of an absolute module name, "root" for the composition root, None outside."""
    parts = module.split(".")
    if parts[0] != "cardstation":
        return None
    if len(parts) == 1:
        return "package"  # the package's __init__: its version, nothing else
    return parts[1] if parts[1] in ALLOWED else "root"


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def upward_edges() -> set[str]:
    edges = set()
    for layer, allowed in ALLOWED.items():
        for path in (ROOT / layer).rglob("*.py"):
            if path.name.endswith(("_pb2.py", "_pb2_grpc.py")):
                continue
            for _line, module in _imports(path):
                target = _layer(module)
                if target is None or target == "package":
                    continue
                if target in allowed:
                    continue
                edges.add(f"{path.relative_to(ROOT)} -> {module}")
    return edges


def test_no_module_imports_upward() -> None:
    assert not upward_edges(), sorted(upward_edges())


def test_the_walk_sees_an_upward_import(tmp_path, monkeypatch) -> None:
    """The check itself: a driver that imports the composition root is reported."""
    fake = tmp_path / "drivers" / "x.py"
    fake.parent.mkdir()
    fake.write_text("def f():\n    from cardstation.config import Config\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    for layer in ALLOWED:
        (tmp_path / layer).mkdir(exist_ok=True)
    assert upward_edges() == {"drivers/x.py -> cardstation.config"}


def test_the_redaction_layer_imports_only_the_standard_library() -> None:
    """Importable from every layer, so it may depend on nothing but the standard library."""
    outside = sorted(f"{path.relative_to(ROOT)} -> {module}"
                     for path in (ROOT / "drivers" / "redaction").rglob("*.py")
                     for _line, module in _imports(path)
                     if module.split(".")[0] not in sys.stdlib_module_names | {"__future__"})
    assert outside == []



def helper_edges(tests_root: Path) -> set[str]:
    """Imports of the tests package other than its `support` package (one test module reaching
    into another, or into conftest.py), relative imports included."""
    edges = set()
    for path in tests_root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level:
                modules = ["tests.<relative>"]
            elif isinstance(node, ast.ImportFrom) and node.module == "tests":
                modules = [f"tests.{a.name}" for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module]
            else:
                continue
            edges.update(f"{path.relative_to(tests_root.parent)}:{node.lineno} -> {m}"
                         for m in modules if m.split(".")[0] == "tests"
                         and m.split(".")[:2] != ["tests", "support"])
    return edges


def test_test_modules_share_helpers_only_through_tests_support() -> None:
    """Shared helpers live in tests/support (its fixtures loaded as plugins by conftest.py):
    a test module importing another drags its tests' imports and fixtures along. Move what is
    shared into tests/support and import it from there (the readers' names: tests.support.pcsc)."""
    assert not helper_edges(ROOT / "tests"), sorted(helper_edges(ROOT / "tests"))


def test_the_walk_sees_a_test_module_importing_another(tmp_path) -> None:
    """The check itself: imports of a test module, of conftest or relative ones are reported;
    tests.support is not."""
    tests = tmp_path / "tests"
    (tests / "support").mkdir(parents=True)
    (tests / "test_a.py").write_text("from tests.test_b import helper\n"
                                     "from tests import test_c\n"
                                     "from .conftest import X\n"
                                     "def f():\n    from tests.conftest import Y\n"
                                     "from tests.support.pcsc import PSAM_READER\n"
                                     "from tests import support\n")
    (tests / "support" / "x.py").write_text("from tests.support.world import make_world\n")
    assert helper_edges(tests) == {
        "tests/test_a.py:1 -> tests.test_b", "tests/test_a.py:2 -> tests.test_c",
        "tests/test_a.py:3 -> tests.<relative>", "tests/test_a.py:5 -> tests.conftest"}
