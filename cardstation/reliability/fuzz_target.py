"""What a fuzz target is, and the byte-level mutator the targets share (see fuzz.py)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: Byte-level mutants fed after each structured example (see the module docstring).
MUTANTS = 15
_INTERESTING = (0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF)


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One to three random byte-level edits of `data` (may return b"")."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(7)
        at = rng.randrange(len(out) + 1)
        if op == 0 and out:  # flip one bit
            i = rng.randrange(len(out))
            out[i] ^= 1 << rng.randrange(8)
        elif op == 1 and out:  # a boundary value
            out[rng.randrange(len(out))] = rng.choice(_INTERESTING)
        elif op == 2:  # insert random bytes
            out[at:at] = rng.randbytes(rng.randint(1, 8))
        elif op == 3 and out:  # delete a run
            del out[at:at + rng.randint(1, 8)]
        elif op == 4:  # cut short
            del out[at:]
        elif op == 5 and out:  # repeat a run
            i = rng.randrange(len(out))
            out[at:at] = out[i:i + rng.randint(1, 16)]
        elif out:  # a 16-bit length-like field set to a boundary
            i = rng.randrange(len(out))
            out[i:i + 2] = rng.choice((0, 1, 0x7FFF, 0x8000, 0xFFFF, len(out))).to_bytes(
                2, "big")
    return bytes(out)


@dataclass(frozen=True)
class Target:
    """One fuzzed component. `expand(example, rng)` turns a drawn example into the inputs to
    feed (itself first, then mutants). `feed(component, input)` returns or raises one of
    `documented` (the component's own errors); anything else is a failure. `alive(component)`
    raises unless the component still answers a valid request correctly."""

    name: str
    strategy: Any  # a hypothesis SearchStrategy
    make: Callable[[], Any]
    feed: Callable[[Any, Any], None]
    documented: tuple[type[BaseException], ...]
    alive: Callable[[Any], None]
    expand: Callable[[Any, random.Random], list[Any]]
