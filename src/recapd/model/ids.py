"""Ids in Mattermost's format: 26 lowercase characters of a base32 alphabet."""

from __future__ import annotations

import base64
import re
import uuid

# Mattermost encodes a random UUID with the alphabet "ybndrfg8ejkmcpqxot1uwisza345h769"
# (z-base-32) and drops the padding, giving 26 characters.
ID_ALPHABET = "ybndrfg8ejkmcpqxot1uwisza345h769"
_STD = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_TRANSLATE = str.maketrans(_STD, ID_ALPHABET)
_ID_RE = re.compile(r"^[a-z0-9]{26}$")


def new_id() -> str:
    """A fresh random 26-character id."""
    raw = base64.b32encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
    return raw.translate(_TRANSLATE)


def is_valid_id(value: object) -> bool:
    """True for a string of exactly 26 lowercase letters and digits, as Mattermost's IsValidId."""
    return isinstance(value, str) and _ID_RE.fullmatch(value) is not None
