"""The cursor codec of keyset pages: opaque, URL-safe text for a position in an ordering.

Global ids (``bookql.graphql.relay``) use the same unpadded URL-safe base64.
"""

from __future__ import annotations

import base64
import binascii

from bookql.core.errors import BadUserInput


def b64encode(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def b64decode(token: str) -> str:
    padded = token + "=" * (-len(token) % 4)
    return base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True).decode()


def encode_cursor(payload: str) -> str:
    return b64encode(payload)


def decode_cursor(cursor: str) -> str:
    try:
        return b64decode(cursor)
    except (binascii.Error, UnicodeError, ValueError):
        raise BadUserInput(f"{cursor!r} is not a valid cursor") from None
