"""How deeply JSON nests, measured without recursion.

A request can nest lists and objects a thousand levels deep in a few kilobytes, and orjson
decodes that (up to 1,024 levels). Everything that then walks the value recursively (our
checks, graphql-core's coercion and messages, orjson's encoder with its 255 levels) would
fail with an internal error, so the depth is measured first, with an explicit stack, and a
value too deep is refused before anything else sees it.
"""

from __future__ import annotations

from typing import Any

import orjson

# Levels a request body may hold around its variables' values: a batch (a list), the
# operation (an object) and its ``variables`` object; a WebSocket message, its payload
# and ``variables``.
ENVELOPE = 3


class NestedTooDeeply(orjson.JSONDecodeError):
    """A JSON document nested deeper than allowed; a ``JSONDecodeError`` so that whoever
    refuses unreadable JSON (Strawberry's HTTP and WebSocket handling) refuses it too."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the JSON nests deeper than {limit} levels", "", 0)


def json_depth(value: Any, stop: int | None = None) -> int:
    """Levels of lists and objects in ``value``: a scalar is 0, ``[]`` is 1, ``{"a": [1]}``
    is 2. Walked a level at a time, without recursion; counting stops past ``stop``."""
    depth = 0
    level = [value] if isinstance(value, dict | list) else []
    while level:
        depth += 1
        if stop is not None and depth > stop:
            return depth
        below = []
        for item in level:
            for child in item.values() if isinstance(item, dict) else item:
                if isinstance(child, dict | list):
                    below.append(child)
        level = below
    return depth


def variables_too_deep(variables: Any, limit: int) -> bool:
    """Whether any variable's value nests more than ``limit`` levels (the ``variables``
    object itself is not counted)."""
    return isinstance(variables, dict) and json_depth(variables, stop=limit + 1) > limit + 1


def variables_message(limit: int) -> str:
    return f"variables must not nest lists and objects more than {limit} levels deep"


def decode_bounded(data: str | bytes, limit: int) -> Any:
    """``data`` decoded, refused (:class:`NestedTooDeeply`) when it nests more than
    ``limit`` levels of variables plus the envelope around them."""
    decoded = orjson.loads(data)
    if json_depth(decoded, stop=limit + ENVELOPE) > limit + ENVELOPE:
        raise NestedTooDeeply(limit + ENVELOPE)
    return decoded
