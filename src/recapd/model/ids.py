"""Ids in Mattermost's format: 26 lowercase characters of a base32 alphabet."""

from __future__ import annotations

import base64
import hashlib
import re
import uuid

# Mattermost encodes a random UUID with the alphabet "ybndrfg8ejkmcpqxot1uwisza345h769"
# (z-base-32) and drops the padding, giving 26 characters.
ID_ALPHABET = "ybndrfg8ejkmcpqxot1uwisza345h769"
_STD = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_TRANSLATE = str.maketrans(_STD, ID_ALPHABET)
_SHIFTS = tuple(range(125, -1, -5))
_ID_RE = re.compile(r"^[a-z0-9]{26}$")


def new_id() -> str:
    """A fresh random 26-character id."""
    raw = base64.b32encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
    return raw.translate(_TRANSLATE)


def stable_id(*parts: str) -> str:
    """A 26-character id derived from `parts`: the same parts always give the same id, so
    repeated or concurrent creators of one thing (an import, the recap bot) write one row.

    The base32 text of 16 bytes of SHA-256, as new_id() encodes a UUID (importers call this
    once per row, and base64.b32encode is slow).
    """
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    n = int.from_bytes(digest[:16], "big") << 2  # 128 bits, padded to 26 groups of 5
    return "".join([ID_ALPHABET[(n >> shift) & 31] for shift in _SHIFTS])


def is_valid_id(value: object) -> bool:
    """True for a string of exactly 26 lowercase letters and digits, as Mattermost's IsValidId."""
    return isinstance(value, str) and _ID_RE.fullmatch(value) is not None
