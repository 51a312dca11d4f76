"""JSON from clients, decoded within bounds: nesting depth, integer size, and text PostgreSQL can store.

``json.loads`` alone recurses once per nesting level (a few KB of ``[[[[`` raise RecursionError),
converts integers of any length (past 4,300 digits Python refuses with a ValueError) and accepts
``NaN``; strings may hold NUL characters or lone surrogates, which no PostgreSQL text column takes.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 64
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
# Longest decimal text of an int64, sign excluded: anything longer is out of range without converting it.
_INT64_DIGITS = 19

# A JSON string, escapes included; an unterminated one runs to the end (so the scan stays linear).
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"?', re.DOTALL)
_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")


class JsonBoundsError(ValueError):
    """The document is JSON beyond the bounds; the message says which."""


def nests_deeper_than(raw: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether brackets outside JSON strings nest deeper than ``limit``, found without recursion.

    Only the brackets are kept ('{' read as '['). Each round of removing every '[]' pair peels one
    level off, so a pair left after ``limit`` rounds sits deeper than ``limit``; more than ``limit``
    brackets never closed are too deep as well. (Other unbalanced input is left to the decoder,
    which refuses it before nesting deeper than twice the limit.)
    """
    brackets = _JSON_STRING.sub(b"", raw).translate(_BRACKETS, _NOT_BRACKETS)
    for _ in range(limit):
        peeled = brackets.replace(b"[]", b"")
        if peeled == brackets:
            break
        brackets = peeled
    return b"[]" in brackets or brackets.count(b"[") > limit


def is_storable_text(text: str) -> bool:
    """Whether PostgreSQL can store the string as text: no NUL, no lone surrogate (not UTF-8)."""
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _int64(literal: str) -> int:
    if len(literal.lstrip("-")) > _INT64_DIGITS:
        raise JsonBoundsError(f"integer {literal[:24]}… is out of range (64-bit signed integers only)")
    value = int(literal)
    if not INT64_MIN <= value <= INT64_MAX:
        raise JsonBoundsError(f"integer {literal} is out of range (64-bit signed integers only)")
    return value


def _no_constant(name: str) -> Any:
    raise JsonBoundsError(f"{name} is not JSON")


def _unstorable_text(value: Any) -> str | None:
    """The first string (key or value) of a decoded document that is not storable text, if any."""
    if isinstance(value, str):
        return None if is_storable_text(value) else value
    children: list[Any] = []
    if isinstance(value, dict):
        children = [*value.keys(), *value.values()]
    elif isinstance(value, list):
        children = value
    for child in children:
        found = _unstorable_text(child)
        if found is not None:
            return found
    return None


def loads_bounded(raw: bytes, *, max_depth: int = MAX_DEPTH, storable_text: bool = False) -> Any:
    """Decode JSON nested at most ``max_depth`` deep with int64 integers and no NaN/Infinity.

    ``storable_text`` also refuses strings PostgreSQL cannot store (NUL characters, lone
    surrogates). Raises JsonBoundsError beyond the bounds, json.JSONDecodeError (a ValueError) or
    UnicodeDecodeError for what is not JSON at all.
    """
    if nests_deeper_than(raw, max_depth):
        raise JsonBoundsError(f"JSON nested deeper than {max_depth} levels")
    document = json.loads(raw, parse_int=_int64, parse_constant=_no_constant)
    if storable_text and (bad := _unstorable_text(document)) is not None:
        raise JsonBoundsError(f"JSON string {bad[:40]!r} holds a NUL character or a lone surrogate")
    return document
