"""A synthetic catalogue of any size in the bundled snapshot's JSON Lines record format, for
``bookql import`` (docs/importing.md): realistic enough that search, counts and statistics
do the work a real shop's catalogue makes them do.

Deterministic from a seed, and pure Python (``random.Random``), so the same seed writes the
same bytes on every machine. What it draws, and from where:

* **words**: the words of the real 1000 books' descriptions (18,000) in their order of
  frequency, then 16,000 generated pseudo-words as a long tail, weighted by rank as
  Zipf-Mandelbrot (``1 / (rank + 2.7)``): a few function words make up much of every text,
  a few hundred content words each appear in a large share of books, and most words are rare.
  Titles draw the same way from the real titles' words (then the descriptions' other words
  and the same tail), title-cased.
* **lengths**: each description and title takes the word count of a real one, drawn at random
  (real descriptions run 145-360 words for the middle 80%).
* **category**: the 50 real categories, weighted by their real counts plus one (as skewed as
  the real shop: "Default" 15%, "Crime" 0.2%).
* **price, rating, stock, reviews**: a shop's spreads rather than the real site's (which
  assigned them uniformly at random): mostly paperback prices, ending .99 most of the time;
  ratings leaning to 4 and 5; some books out of stock; reviews heavy-tailed.
* **UPC**: 16 hex digits, a bijection of the row number (unique by construction).

``search_word()`` names a content word expected in about a quarter of the books (title or
description): the common-word search the growth benchmark measures.

    python -m bench.catalogue_generator 100000 [--seed 1] > catalogue.jsonl
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import re
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import IO, Any

from bookql.catalog.snapshot import read_snapshot_rows

GENERATOR_VERSION = 1  # bump whenever the same seed would write different records
SEED = 1
TAIL_WORDS = 16_000  # generated pseudo-words after the real ones
ZIPF_OFFSET = 2.7  # Mandelbrot's q: flattens the head of the curve, as in real text
SEARCH_SHARE = 0.25  # the common word's target share of books
_UPC_MULTIPLIER = 0x9E3779B97F4A7C15  # odd: multiplying by it mod 2**64 is a bijection
_WORD = re.compile(r"[a-z]+")
# Words PostgreSQL's english text search drops or that say nothing on their own: never the
# search word.
_STOP_WORDS = (
    "a about above after again against all am an and any are as at be because been before"
    " being below between both but by can could did do does doing down during each few for"
    " from further had has have having he her here hers herself him himself his how i if in"
    " into is it its itself just me more most my myself no nor not now of off on once only or"
    " other our ours ourselves out over own same she should so some such than that the their"
    " theirs them themselves then there these they this those through to too under until up"
    " very was we were what when where which while who whom why will with would you your"
    " yours yourself yourselves one new also many much even like"
)
_STOP = frozenset(_STOP_WORDS.split())
_ONSETS = ("b", "br", "c", "d", "dr", "f", "g", "gr", "h", "k", "l", "m", "n", "p", "r", "s",
           "st", "t", "th", "v", "w", "z", "sh", "ch", "")  # fmt: skip
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "ou", "y")
_CODAS = ("", "", "n", "r", "l", "s", "th", "nd", "rk", "x")


@dataclass(frozen=True)
class Weighted:
    """Words and their cumulative Zipf weights, for ``random.choices``."""

    words: tuple[str, ...]
    cumulative: tuple[float, ...]

    def probability(self, rank: int) -> float:
        return 1 / (rank + 1 + ZIPF_OFFSET) / self.cumulative[-1]


@dataclass(frozen=True)
class Vocabulary:
    description: Weighted
    title: Weighted
    description_lengths: tuple[int, ...]  # word counts of the real descriptions (0: none)
    title_lengths: tuple[int, ...]
    categories: tuple[str, ...]
    category_weights: tuple[float, ...]


def _zipf(words: Sequence[str]) -> Weighted:
    weights = (1 / (rank + 1 + ZIPF_OFFSET) for rank in range(len(words)))
    return Weighted(tuple(words), tuple(itertools.accumulate(weights)))


def _by_frequency(counts: Counter[str]) -> list[str]:
    return [word for word, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))]


def _pseudo_words(count: int, taken: set[str]) -> list[str]:
    """Pronounceable made-up words (names, places, rare terms), the same every run."""
    chance = random.Random(f"bookql-bench-vocabulary-{GENERATOR_VERSION}")
    made: list[str] = []
    seen = set(taken)
    while len(made) < count:
        syllables = chance.choice((2, 2, 3, 3, 3, 4))
        word = "".join(
            chance.choice(_ONSETS) + chance.choice(_VOWELS) for _ in range(syllables)
        ) + chance.choice(_CODAS)
        if len(word) >= 4 and word not in seen:
            seen.add(word)
            made.append(word)
    return made


@cache
def vocabulary() -> Vocabulary:
    """Everything drawn from, derived from the bundled snapshot."""
    rows = list(read_snapshot_rows())
    text_counts: Counter[str] = Counter()
    title_counts: Counter[str] = Counter()
    description_lengths = []
    title_lengths = []
    for row in rows:
        words = _WORD.findall((row.get("description") or "").lower())
        text_counts.update(words)
        description_lengths.append(len(words))
        title = _WORD.findall(row["title"].lower())
        title_counts.update(title)
        title_lengths.append(max(1, len(title)))
    real = [w for w in _by_frequency(text_counts) if len(w) > 1 or w in ("a", "i")]
    titles = [w for w in _by_frequency(title_counts) if len(w) > 1 or w in ("a", "i")]
    tail = _pseudo_words(TAIL_WORDS, set(text_counts) | set(title_counts))
    in_titles = set(titles)
    categories = Counter(row["category"] for row in rows)
    names = sorted(categories)
    return Vocabulary(
        description=_zipf(real + tail),
        title=_zipf(
            [w.capitalize() for w in titles + [w for w in real if w not in in_titles] + tail]
        ),
        description_lengths=tuple(description_lengths),
        title_lengths=tuple(title_lengths),
        categories=tuple(names),
        category_weights=tuple(categories[name] + 1 for name in names),
    )


def expected_share(word: str) -> float:
    """The share of generated books whose title or description holds ``word``."""
    found = vocabulary()

    def missing(weighted: Weighted, lengths: Sequence[int], candidate: str) -> float:
        try:
            p = weighted.probability(weighted.words.index(candidate))
        except ValueError:
            return 1.0
        return sum((1 - p) ** length for length in lengths) / len(lengths)

    return 1 - missing(found.description, found.description_lengths, word.lower()) * missing(
        found.title, found.title_lengths, word.capitalize()
    )


def _inflects(word: str, other: str) -> bool:
    """Whether a stemmer may fold ``other`` into ``word`` (story, stories; love, loved)."""
    stem = word[:-1] if len(word) > 4 else word
    return other != word and other.startswith(stem) and abs(len(other) - len(word)) <= 3


@cache
def search_word() -> str:
    """A content word in about a quarter of the books, with no inflection in the vocabulary
    that stemming would count with it: the common word the growth benchmark searches for."""
    words = vocabulary().description.words
    candidates = [w for w in words[:400] if len(w) >= 4 and w not in _STOP and w.isascii()]
    clean = [w for w in candidates if not any(_inflects(w, other) for other in words[:5000])]
    return min(clean, key=lambda w: abs(expected_share(w) - SEARCH_SHARE))


def upc(index: int, seed: int = SEED) -> str:
    """The UPC of row ``index``: distinct for distinct rows of one seed."""
    offset = random.Random(f"upc-{seed}").getrandbits(64)
    return f"{(index * _UPC_MULTIPLIER + offset) % 2**64:016x}"


def _price(chance: random.Random) -> float:
    """Pounds: paperbacks mostly, some hardbacks and a few specialist books."""
    kind = chance.random()
    centre, spread = (9.5, 0.35) if kind < 0.68 else (20.0, 0.3) if kind < 0.95 else (45.0, 0.5)
    pounds = min(250.0, max(0.99, chance.lognormvariate(math.log(centre), spread)))
    ending = chance.random()
    if ending < 0.65:
        return math.floor(pounds) + 0.99
    if ending < 0.8:
        return math.floor(pounds) + 0.49
    return round(pounds, 2)


_RATINGS = (1, 2, 3, 4, 5)
_RATING_WEIGHTS = (0.07, 0.09, 0.2, 0.34, 0.3)


def _sentences(chance: random.Random, words: list[str]) -> str:
    """The words as sentences of 6 to 22 words, each capitalised and closed."""
    out = []
    start = 0
    while start < len(words):
        end = start + chance.randint(6, 22)
        sentence = words[start:end]
        sentence[0] = sentence[0].capitalize()
        out.append(" ".join(sentence) + ".")
        start = end
    return " ".join(out)


def generate(count: int, seed: int = SEED) -> Iterator[dict[str, Any]]:
    """``count`` records, the same ones for the same seed."""
    found = vocabulary()
    chance = random.Random(f"bookql-bench-catalogue-{GENERATOR_VERSION}-{seed}")
    text, title_words = found.description, found.title
    for index in range(count):
        code = upc(index, seed)
        length = chance.choice(found.title_lengths)
        title = " ".join(
            chance.choices(title_words.words, cum_weights=title_words.cumulative, k=length)
        )
        if chance.random() < 0.12:
            series = " ".join(
                chance.choices(
                    title_words.words, cum_weights=title_words.cumulative, k=chance.randint(1, 2)
                )
            )
            title += f" ({series}, #{chance.randint(1, 12)})"
        described = chance.choice(found.description_lengths)
        description = (
            _sentences(chance, chance.choices(text.words, cum_weights=text.cumulative, k=described))
            if described
            else None
        )
        price = _price(chance)
        stock = 0 if chance.random() < 0.08 else 1 + int(chance.expovariate(1 / 12))
        reviews = 0 if chance.random() < 0.3 else min(50_000, int(chance.paretovariate(1.1) * 2))
        yield {
            "upc": code,
            "title": title,
            "product_type": "Books",
            "price_excl_tax": price,
            "price_incl_tax": price,
            "tax": 0.0,
            "price": price,
            "currency": "GBP",
            "availability": f"In stock ({stock} available)" if stock else "Out of stock",
            "availability_count": stock,
            "in_stock": stock > 0,
            "rating": chance.choices(_RATINGS, _RATING_WEIGHTS)[0],
            "num_reviews": reviews,
            "category": chance.choices(found.categories, found.category_weights)[0],
            "description": description,
            "image_url": f"https://books.example/media/{code[:2]}/{code[2:4]}/{code}.jpg",
            "product_url": f"https://books.example/catalogue/{code}/index.html",
        }


def write(out: IO[str], count: int, seed: int = SEED) -> None:
    for record in generate(count, seed):
        out.write(json.dumps(record, ensure_ascii=False) + "\n")


def write_file(path: Path, count: int, seed: int = SEED) -> None:
    with path.open("w", encoding="utf-8", buffering=1 << 20) as out:
        write(out, count, seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("count", type=int)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    write(sys.stdout, args.count, args.seed)


if __name__ == "__main__":
    main()
