"""Full-text search: SQLite FTS5 (bm25) and PostgreSQL tsvector (ts_rank_cd), one meaning.

A search is the words of the text (letters and digits), lower-cased, English stop words
dropped, every remaining word required (AND), each stemmed by the engine. Users never write
engine syntax, so nothing they type can break or widen the query.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
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


RANKED_MATCHES = 1000
"""A relevance order ranks at most this many matches: the listing's first, in site order."""


@dataclass(frozen=True)
class Search:
    """What a search adds to a books query: which books match, and how well.

    ``matches`` is every matching book (``book_id``), what counts and the other orders read.
    ``ranked(where)`` is what a relevance order reads: the first ``RANKED_MATCHES`` books that
    match and satisfy ``where``, in site order (``id``), each with its relevance (higher:
    better). Only those are ranked and listed, so a word found in half the catalogue costs
    a walk of the ids up to its thousandth match and the ranking of a thousand documents,
    not the fetch, ranking and sort of every match. Both databases pick the same candidates
    (their matches are the same), and a search with fewer matches than the bound ranks them
    all, exactly as before.
    """

    dialect: str
    words: tuple[str, ...]

    @property
    def matches(self) -> FromClause:
        if self.dialect == "postgresql":
            return (
                select(_book_search.c.book_id)
                .where(_book_search.c.document.op("@@")(self._tsquery()))
                .subquery("matches")
            )
        return select(_fts.c.rowid.label("book_id")).where(self._fts_match()).subquery("matches")

    def join_onto(self, base: Any) -> Any:
        """``base`` (``books``) narrowed to every match."""
        matches = self.matches
        return base.join(matches, matches.c.book_id == books.c.id)

    def ranked(self, where: Sequence[ColumnElement[bool]]) -> FromClause:
        """The ranked candidates: ``book_id`` and ``relevance``, at most ``RANKED_MATCHES``."""
        if self.dialect == "postgresql":
            query = self._tsquery()
            # ts_rank_cd is a float4, printed rounded: as double precision it survives the
            # trip through a cursor exactly, so the next page starts where this one ended.
            relevance: ColumnElement[Any] = cast(
                func.ts_rank_cd(_book_search.c.document, query), Double
            )
            statement = (
                select(_book_search.c.book_id, relevance.label("relevance"))
                .select_from(_book_search.join(books, books.c.id == _book_search.c.book_id))
                .where(_book_search.c.document.op("@@")(query))
                .order_by(books.c.id)
            )
        else:
            # title weighs 10x; typed, so that a cursor's relevance is checked as a number
            relevance = -func.bm25(literal_column("books_fts"), 10.0, 1.0, type_=Double)
            statement = (
                select(_fts.c.rowid.label("book_id"), relevance.label("relevance"))
                .select_from(_fts.join(books, books.c.id == _fts.c.rowid))
                .where(self._fts_match())
                .order_by(_fts.c.rowid)  # FTS5's own order: it stops at the bound
            )
        return statement.where(*where).limit(RANKED_MATCHES).subquery("ranked")

    def _tsquery(self) -> ColumnElement[Any]:
        return func.to_tsquery("english", " & ".join(self.words))

    def _fts_match(self) -> ColumnElement[bool]:
        match = " ".join(f'"{word}"' for word in self.words)
        return literal_column("books_fts").op("MATCH")(match)


def build_search(dialect: str, text: str) -> Search:
    return Search(dialect=dialect, words=tuple(search_words(text)))
