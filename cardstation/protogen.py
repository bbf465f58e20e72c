"""Generate Python code for protos/cardstation/v1/*.proto (run by `make setup`).

protoc writes imports relative to the proto root (`from cardstation.v1 import x_pb2`); the
generated files live in the installed package `cardstation.protos.cardstation.v1`, so those
imports are rewritten to absolute ones. Regenerates only when a .proto is newer than its output.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "protos"
_IMPORT = re.compile(r"^from cardstation\.v1 import ", re.MULTILINE)


def generate(force: bool = False) -> list[Path]:
    from grpc_tools import protoc

    protos = sorted((ROOT / "cardstation" / "v1").glob("*.proto"))
    stale = [
        p for p in protos
        if force or not (out := p.with_name(p.stem + "_pb2.py")).exists()
        or out.stat().st_mtime < p.stat().st_mtime
    ]
    if not stale:
        return []
    import grpc_tools

    include = str(Path(grpc_tools.__file__).parent / "_proto")
    args = ["protoc", f"-I{ROOT}", f"-I{include}", f"--python_out={ROOT}", f"--pyi_out={ROOT}",
            f"--grpc_python_out={ROOT}", *(str(p.relative_to(ROOT)) for p in protos)]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed (see the message above)")
    for generated in (ROOT / "cardstation" / "v1").glob("*_pb2*.py*"):
        text = generated.read_text()
        fixed = _IMPORT.sub("from cardstation.protos.cardstation.v1 import ", text)
        if fixed != text:
            generated.write_text(fixed)
    return stale


def main() -> int:
    done = generate(force="--force" in sys.argv)
    print(f"protos: generated {len(done)} file(s)" if done else "protos: up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
