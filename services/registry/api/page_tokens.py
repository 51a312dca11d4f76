"""Opaque ``next_page`` tokens of /api/v1 listings (Quay's: the client passes back what it got).

A token is a keyset position, base64url-encoded JSON of a pydantic model: it carries no rights,
since a page only ever lists rows after it that the caller may see. A token that does not decode
to its model, or holds a NUL character (which PostgreSQL refuses), is a 400.
"""

from __future__ import annotations

import base64
import binascii
from typing import TypeVar

from pydantic import BaseModel

from services.registry.api.common import bad_request

MAX_TOKEN_LENGTH = 1024
Position = TypeVar("Position", bound=BaseModel)


def encode_token(position: BaseModel) -> str:
    return base64.urlsafe_b64encode(position.model_dump_json().encode()).decode()


def decode_token(model: type[Position], token: str) -> Position:
    """The position a token names; 400 ("Invalid next_page token") when it names none."""
    try:
        document = base64.urlsafe_b64decode(token.encode())
        if b"\x00" in document or b"\\u0000" in document:
            raise ValueError("NUL character")
        return model.model_validate_json(document, strict=True)
    except (binascii.Error, ValueError) as error:
        raise bad_request("Invalid next_page token") from error
