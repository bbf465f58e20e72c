"""The station data key: what seals the journal's personal fields (AES-256-GCM, per row).

The key lives outside the journal, in `<data_dir>/data.key` (0600, JSON): a copy of the journal
alone (a stolen disk image, a backup file mailed by mistake) gives nobody the ID numbers, names,
photos or bank accounts in it. The file holds every key still needed, by key id (`kid`):

    {"format": "cardstation-data-key", "current": "<kid>", "keys": {"<kid>": "<base64>", ...}}

`current` seals everything written from now on; the others only open what was sealed before a
rotation (`cardstation datakey rotate`) and are dropped once nothing needs them.

A sealed value is `<kid>:<base64 of nonce | ciphertext+tag>`, with the table, column and row id
as associated data: a value copied into another row (or column) does not open there, it is
refused as tampering.

The ID number is also kept as a lookup (HMAC-SHA256 under a key derived from the data key with
HKDF), so the journal finds an applicant's jobs without holding the number in clear.

The key service could one day hold this key instead of the file (`DataKeySource`); the key
services this station has (software, HSM) offer no data-key call yet, so the file is the only
source for now and `[keys]` does not choose it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import stat
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_FILE = "data.key"
FORMAT = "cardstation-data-key"
KEY_BYTES = 32
NONCE_BYTES = 12
#: The remedy when the key is missing or wrong: the journal's personal fields need it.
REMEDY_KEY = ("put back the station's data.key from the backup made with this journal (a "
              "journal without its key cannot show its holders' data), then start again")


class DataKeyError(ValueError):
    """The data key file is missing, open to others, malformed, or not this journal's."""


class SealedValueError(DataKeyError):
    """A sealed value does not open: tampered, moved to another row, or sealed under a key the
    key file does not hold."""


class DataKeySource(Protocol):
    """Where the data keys come from (the file today; a key service could be another)."""

    def load(self) -> DataKeys: ...


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def new_kid() -> str:
    return secrets.token_hex(4)


@dataclass
class DataKeys:
    """The keys of one key file: `current` seals, all of `keys` open."""

    current: str
    keys: dict[str, bytes]
    path: Path | None = None
    _aead: dict[str, AESGCM] = field(default_factory=dict, repr=False)
    _lookup: dict[str, bytes] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.current not in self.keys:
            raise DataKeyError(f"data key file {self.path}: its current key {self.current} "
                               "is not in it")
        for kid, key in self.keys.items():
            if len(key) != KEY_BYTES or ":" in kid or not kid:
                raise DataKeyError(f"data key file {self.path}: key {kid!r} is not a "
                                   f"{KEY_BYTES}-byte key")
            self._aead[kid] = AESGCM(key)
            # a key of its own for lookups: an HMAC never shares a key with the cipher
            self._lookup[kid] = HKDF(hashes.SHA256(), KEY_BYTES, salt=None,
                                     info=b"cardstation id-number lookup").derive(key)

    def __repr__(self) -> str:  # never the key bytes
        return f"DataKeys(current={self.current!r}, kids={sorted(self.keys)!r})"

    @property
    def old(self) -> list[str]:
        """Kids kept only to open what was sealed before the last rotation."""
        return sorted(k for k in self.keys if k != self.current)

    def seal(self, plain: bytes, aad: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead[self.current].encrypt(nonce, plain, aad.encode("utf-8"))
        return f"{self.current}:{_b64(nonce + sealed)}"

    def open(self, token: str, aad: str) -> bytes:
        kid, _, body = token.partition(":")
        aead = self._aead.get(kid)
        if aead is None:
            raise SealedValueError(f"{aad} is sealed under data key {kid}, which the key file "
                                   f"{self.path} does not hold — {REMEDY_KEY}")
        try:
            # not validate=True: that path is many times slower, and the tag refuses any
            # altered byte anyway
            raw = base64.b64decode(body)
            return aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad.encode("utf-8"))
        except (InvalidTag, ValueError):
            raise SealedValueError(f"{aad} does not open with data key {kid}: the value was "
                                   "altered or moved from another row; restore the journal "
                                   "from the backup") from None

    @staticmethod
    def kid_of(token: str) -> str:
        return token.partition(":")[0]

    def lookup(self, id_number: str, kid: str | None = None) -> str:
        """The ID number's lookup under `kid` (default: the current key)."""
        key = self._lookup[kid or self.current]
        return hmac.new(key, id_number.encode("utf-8"), hashlib.sha256).hexdigest()

    def lookups(self, id_number: str) -> list[str]:
        """Its lookups under every key held (rows not yet resealed after a rotation)."""
        return [self.lookup(id_number, kid) for kid in sorted(self.keys)]


# -- sealed JSON columns ---------------------------------------------------------------------

SEALED = "sealed"


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, sort_keys=True)


#: Sealed JSON longer than this is deflated first: the photo travels as base64 inside the JSON,
#: and the sealed value is base64 again, so a photo would be stored a third larger than in
#: clear, and rewritten at every step of its card.
_DEFLATE_FROM = 2048


def _deflate(plain: bytes) -> bytes:
    # Huffman coding only: base64 (the photo) has nothing for a string search to find, and
    # this is twice as fast as the fastest level for the same size
    packer = zlib.compressobj(1, zlib.DEFLATED, 15, 9, zlib.Z_HUFFMAN_ONLY)
    return packer.compress(plain) + packer.flush()


def seal_object(keys: DataKeys, obj: dict[str, Any], clear: frozenset[str], aad: str) -> str:
    """JSON text of `obj` with every key not in `clear` sealed into one "sealed" member (the
    column stays a JSON object, so its CHECK (json_valid) and the report's json_extract of
    the clear facts still work)."""
    out = {k: v for k, v in obj.items() if k in clear}
    secret = {k: v for k, v in obj.items() if k not in clear}
    if secret:
        plain = _dumps(secret).encode("utf-8")
        if len(plain) > _DEFLATE_FROM:  # JSON starts with "{", a zlib stream never does
            plain = _deflate(plain)
        out[SEALED] = keys.seal(plain, aad)
    return _dumps(out)


def open_object(keys: DataKeys | None, obj: dict[str, Any], aad: str) -> dict[str, Any]:
    """The decoded column (`obj`, parsed) with its sealed member opened and merged."""
    token = obj.get(SEALED)
    if not isinstance(token, str):
        return obj
    if keys is None:
        raise DataKeyError(f"{aad} is sealed and no data key was given — {REMEDY_KEY}")
    plain = keys.open(token, aad)
    secret = json.loads(plain if plain[:1] == b"{" else zlib.decompress(plain))
    clear = {k: v for k, v in obj.items() if k != SEALED}
    return {**clear, **secret}


def seal_text(keys: DataKeys, text: str, aad: str) -> str:
    return _dumps({SEALED: keys.seal(text.encode("utf-8"), aad)})


def is_sealed_text(stored: str) -> bool:
    return stored.startswith('{"sealed"')


def open_text(keys: DataKeys | None, stored: str, aad: str) -> str:
    """A column made by `seal_text` opened; a value from before sealing is returned as is."""
    if not is_sealed_text(stored):
        return stored
    if keys is None:
        raise DataKeyError(f"{aad} is sealed and no data key was given — {REMEDY_KEY}")
    return keys.open(json.loads(stored)[SEALED], aad).decode("utf-8")


def sealed_kids(stored: str) -> str | None:
    """The kid a stored column value is sealed under (None: nothing sealed in it)."""
    try:
        obj = json.loads(stored)
    except ValueError:
        return None
    token = obj.get(SEALED) if isinstance(obj, dict) else None
    return DataKeys.kid_of(token) if isinstance(token, str) else None


def aad(table: str, column: str, row: str) -> str:
    return f"{table}/{column}/{row}"


# -- the key file ----------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyFile:
    """The data key file at `path` (the `DataKeySource` a station uses)."""

    path: Path

    @classmethod
    def beside(cls, journal: str | Path) -> KeyFile:
        return cls(Path(journal).parent / KEY_FILE)

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> DataKeys:
        """The keys; DataKeyError when missing, open to others or malformed."""
        try:
            mode = stat.S_IMODE(os.stat(self.path).st_mode)
        except FileNotFoundError:
            raise DataKeyError(f"data key file {self.path} does not exist — "
                               f"{REMEDY_KEY}") from None
        except OSError as exc:
            raise DataKeyError(f"data key file {self.path} cannot be read: "
                               f"{exc.strerror}") from None
        if mode & 0o077:
            raise DataKeyError(
                f"data key file {self.path} is readable by other users (mode {mode:04o}); "
                f"run `chmod 600 {self.path}` (and consider the holders' data exposed: rotate "
                "the key with `cardstation datakey rotate`) and start again")
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            if doc.get("format") != FORMAT:
                raise ValueError("not a data key file")
            keys = {str(k): base64.b64decode(v, validate=True) for k, v in doc["keys"].items()}
            current = str(doc["current"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DataKeyError(f"data key file {self.path} is damaged ({exc}) — "
                               f"{REMEDY_KEY}") from None
        return DataKeys(current, keys, self.path)

    def create(self) -> DataKeys:
        """A new file with one fresh key (O_EXCL: two starts at once cannot make two keys;
        the loser reads the winner's)."""
        kid = new_kid()
        keys = DataKeys(kid, {kid: secrets.token_bytes(KEY_BYTES)}, self.path)
        try:
            self._write(keys, exclusive=True)
        except FileExistsError:
            return self.load()
        return keys

    def load_or_create(self) -> DataKeys:
        return self.load() if self.path.exists() else self.create()

    def save(self, keys: DataKeys) -> None:
        """Replace the file atomically (a rotation adds or drops a key)."""
        self._write(keys, exclusive=False)

    def _write(self, keys: DataKeys, *, exclusive: bool) -> None:
        doc = {"format": FORMAT, "current": keys.current,
               "keys": {kid: _b64(k) for kid, k in sorted(keys.keys.items())}}
        body = (json.dumps(doc, indent=1) + "\n").encode("ascii")
        target = self.path if exclusive else self.path.with_name(self.path.name + ".new")
        if not exclusive:
            target.unlink(missing_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, body)
            os.fsync(fd)
        finally:
            os.close(fd)
        if not exclusive:
            os.replace(target, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def with_new_key(keys: DataKeys) -> DataKeys:
    """The keys plus a fresh one, made current (the old ones still open)."""
    kid = new_kid()
    return DataKeys(kid, {**keys.keys, kid: secrets.token_bytes(KEY_BYTES)}, keys.path)


def without(keys: DataKeys, kids: Iterable[str]) -> DataKeys:
    drop = set(kids) - {keys.current}
    return DataKeys(keys.current, {k: v for k, v in keys.keys.items() if k not in drop},
                    keys.path)
