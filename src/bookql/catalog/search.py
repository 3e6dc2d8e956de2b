"""Full-text search: SQLite FTS5 (bm25) and PostgreSQL tsvector (ts_rank_cd), one meaning.

A search is the words of the text (letters and digits), lower-cased, English stop words
dropped, every remaining word required (AND), each stemmed by the engine. Users never write
engine syntax, so nothing they type can break or widen the query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Double,
    FromClause,
    cast,
    column,
    func,
    literal_column,
    select,
    table,
)

from bookql.catalog.tables import books
from bookql.core.errors import BadUserInput

MAX_SEARCH_WORDS = 16
_WORD = re.compile(r"[^\W_]+", re.UNICODE)

# PostgreSQL's English stop words that its parser drops; dropped here for both engines so
# that "the road" means "road" everywhere.
STOP_WORDS = frozenset(
    " ".join(
        [
            "a about above after again against all am an and any are as at be because been before",
            "being below between both but by can did do does doing down during each few for from",
            "further had has have having he her here hers herself him himself his how i if in into",
            "is it its itself just me more most my myself no nor not now of off on once only or",
            "other our ours ourselves out over own same she should so some such than that the",
            "their theirs them themselves then there these they this those through to too under",
            "until up very was we were what when where which while who whom why will with you",
            "your yours yourself yourselves s t don",
        ]
    ).split()
)

_fts = table("books_fts", column("rowid"))
_book_search = table("book_search", column("book_id"), column("document"))


def search_words(text: str) -> list[str]:
    """The words a search requires; refuses a search with none."""
    words = [w.lower() for w in _WORD.findall(text)]
    kept = list(dict.fromkeys(w for w in words if w not in STOP_WORDS))
    if not kept:
        raise BadUserInput("`search` needs at least one word that is not a stop word")
    if len(kept) > MAX_SEARCH_WORDS:
        raise BadUserInput(f"`search` takes at most {MAX_SEARCH_WORDS} words")
    return kept


@dataclass(frozen=True)
class Search:
    """What a search adds to a books query: a source to join and a relevance (higher: better)."""

    source: FromClause
    relevance: ColumnElement[Any]

    def join_onto(self, base: Any) -> Any:
        return base.join(self.source, self.source.c.book_id == books.c.id)


def build_search(dialect: str, text: str) -> Search:
    words = search_words(text)
    if dialect == "postgresql":
        query = func.to_tsquery("english", " & ".join(words))
        # ts_rank_cd is a float4, printed rounded: as double precision it survives the trip
        # through a cursor exactly, so the next page starts where this one ended.
        relevance: ColumnElement[Any] = cast(
            func.ts_rank_cd(_book_search.c.document, query), Double
        )
        source = (
            select(_book_search.c.book_id, relevance.label("relevance"))
            .where(_book_search.c.document.op("@@")(query))
            .subquery("matches")
        )
    else:
        match = " ".join(f'"{word}"' for word in words)
        # title weighs 10x; typed, so that a cursor's relevance is checked as a number
        relevance = -func.bm25(literal_column("books_fts"), 10.0, 1.0, type_=Double)
        source = (
            select(_fts.c.rowid.label("book_id"), relevance.label("relevance"))
            .where(literal_column("books_fts").op("MATCH")(match))
            .subquery("matches")
        )
    return Search(source=source, relevance=source.c.relevance)
