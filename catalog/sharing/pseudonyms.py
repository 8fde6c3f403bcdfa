"""Keyed pseudonyms of masked values: HMAC-SHA256, computed inside DuckDB.

Where a partial mask would leak (the hidden digits of an identity number are other items of
the same scope), the value is replaced by ``ps_`` and 20 hex digits of HMAC-SHA256 under a
key of the scope: one per grant, or per department and dataset for unconditional reads. So
the same person gets the same pseudonym within a grant (joins and counts work) and different
ones across grants and departments (no joining of two grants' pseudonyms). The keys derive
from one secret kept outside the lake (``Settings.pseudonym_key_path``).

HMAC is written in SQL over DuckDB's ``sha256`` (tested against Python's ``hmac``), so the
raw value never leaves the engine.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from catalog.settings import Settings

PREFIX = "ps_"
HEX_DIGITS = 20  # 80 bits: no collisions to expect among tens of millions of values
_BLOCK = 64  # SHA-256 block size in bytes


class Pseudonymiser:
    """Derives one key per scope from the platform's pseudonym secret."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ValueError("the pseudonym secret must be at least 32 bytes")
        self._secret = secret

    @classmethod
    def from_settings(cls, settings: Settings) -> Pseudonymiser:
        return cls(load_or_create_secret(settings.pseudonym_key_path))

    def key_for(self, context: str) -> bytes:
        return hmac.new(self._secret, context.encode("utf-8"), hashlib.sha256).digest()


def load_or_create_secret(path: Path) -> bytes:
    """The secret in ``path``; a new random one (owner-only file) if there is none yet."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(32))
    return path.read_bytes()


def _blob(data: bytes) -> str:
    return "'" + "".join(f"\\x{b:02X}" for b in data) + "'::BLOB"


@functools.lru_cache(maxsize=1024)  # a key's pads are spelt on every page read with it
def _pads(key: bytes) -> tuple[str, str]:
    """The SQL of a key's outer and inner pads (RFC 2104)."""
    padded = key.ljust(_BLOCK, b"\0") if len(key) <= _BLOCK else hashlib.sha256(key).digest()
    padded = padded.ljust(_BLOCK, b"\0")
    return _blob(bytes(b ^ 0x5C for b in padded)), _blob(bytes(b ^ 0x36 for b in padded))


def hmac_sql(key: bytes, text_expr: str) -> str:
    """SQL of HMAC-SHA256(key, text) as lower-case hex (RFC 2104)."""
    outer, inner = _pads(key)
    return f"sha256({outer} || unhex(sha256({inner} || encode({text_expr}))))"


def pseudonym_sql(key: bytes, column: str) -> str:
    """SQL of the pseudonym of a column's value (NULL stays NULL)."""
    text = f"CAST({column} AS VARCHAR)"
    return (
        f"CASE WHEN {column} IS NULL THEN NULL "
        f"ELSE '{PREFIX}' || left({hmac_sql(key, text)}, {HEX_DIGITS}) END"
    )


def pseudonym(key: bytes, value: str) -> str:
    """The same pseudonym computed in Python (tests, and matching a value a caller holds)."""
    digest = hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()
    return PREFIX + digest[:HEX_DIGITS]
