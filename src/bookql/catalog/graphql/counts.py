"""``BookConnection.count``: a count that reads at most ``limit`` books, as Shopify's ``Count``.

``totalCount`` is exact and, for filters the tallies cannot answer (title, stock, search),
counts every matching book. ``count(limit:)`` stops after ``limit + 1``: the figure is
``EXACT`` when it is below or at the bound, ``AT_LEAST`` (and equal to the bound) otherwise.
Filters the tallies answer are counted from them, exactly, and capped the same way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Annotated

import strawberry

from bookql.core.errors import BadUserInput

DEFAULT_COUNT_LIMIT = 10_000
MAX_COUNT_LIMIT = 100_000

CountAtMost = Callable[[int], Awaitable[tuple[int, bool]]]
"""``(count capped at limit, exact)`` of a listing, for a given limit."""

LimitArgument = Annotated[
    int,
    strawberry.argument(
        description=f"Count at most this many books (0 to {MAX_COUNT_LIMIT}): the cost bound."
    ),
]


@strawberry.enum(description="Whether a count is the exact figure or a lower bound.")
class CountPrecision(Enum):
    EXACT = "EXACT"
    AT_LEAST = "AT_LEAST"


@strawberry.type(description="A count, and whether it is exact or the bound it stopped at.")
class Count:
    count: int
    precision: CountPrecision


async def bounded_count(count_at_most: CountAtMost, limit: int) -> Count:
    if not 0 <= limit <= MAX_COUNT_LIMIT:
        raise BadUserInput(f"`limit` must be between 0 and {MAX_COUNT_LIMIT}", argument="limit")
    count, exact = await count_at_most(limit)
    return Count(count=count, precision=CountPrecision.EXACT if exact else CountPrecision.AT_LEAST)
