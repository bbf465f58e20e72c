"""What a fuzz target is, and the byte-level mutator the targets share (see fuzz.py)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


def replace_one(items: list[Any], rng: random.Random, change: Callable[[Any], Any]) -> list[Any]:
    """`items` with one of them, chosen by `rng`, replaced by `change(item)`."""
    i = rng.randrange(len(items))
    return [*items[:i], change(items[i]), *items[i + 1:]]


class ScriptedLine:
    """What the drivers use of a pyserial port, answering each write with the next reply of
    `script` (subclasses turn a reply into bytes in `answer`). A read past what was answered
    returns short, as a port whose timeout passed; with `dead_when_quiet`, the second such
    read raises instead (the line is gone), so an input costs no waiting."""

    baudrate = 115200

    def __init__(self, dead_when_quiet: bool = False) -> None:
        self.script: list[Any] = []
        self.pending = bytearray()
        self.dead_when_quiet = dead_when_quiet
        self._empty_reads = 0

    def answer(self, written: bytes) -> None:
        raise NotImplementedError

    @property
    def in_waiting(self) -> int:
        return len(self.pending)

    def reset_input_buffer(self) -> None:
        self.pending.clear()

    def write(self, data: bytes) -> int:
        self.answer(bytes(data))
        return len(data)

    def read(self, n: int) -> bytes:
        out = bytes(self.pending[:n])
        del self.pending[:n]
        if out:
            self._empty_reads = 0
        elif self.dead_when_quiet:
            self._empty_reads += 1
            if self._empty_reads > 1:
                import serial

                raise serial.SerialException("scripted line: nothing more to read")
        return out

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def attach_line(driver: Any, attribute: str, line: Any) -> Any:
    """Put `line` in place of the port a driver opened (`driver.<attribute>`)."""
    getattr(driver, attribute).close()
    setattr(driver, attribute, line)
    return driver


@contextmanager
def scripted(line: Any, replies: list[Any]) -> Iterator[None]:
    """`line` answers with `replies` for the duration (what is left unread stays)."""
    line.script = list(replies)
    try:
        yield
    finally:
        line.script = []


def reply_mutants(mutant: Callable[[Any, random.Random], Any]
                  ) -> Callable[[Any, random.Random], list[Any]]:
    """The `expand` of a scripted target whose examples are (operation, replies): the example,
    then MUTANTS copies with one reply each replaced by `mutant(reply, rng)`."""

    def expand(example: tuple[str, list[Any]], rng: random.Random) -> list[Any]:
        operation, replies = example
        if not replies:
            return [example]
        return [example] + [(operation, replace_one(replies, rng, lambda r: mutant(r, rng)))
                            for _ in range(MUTANTS)]

    return expand
