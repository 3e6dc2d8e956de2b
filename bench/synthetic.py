"""A synthetic catalogue of any size in PostgreSQL, for the benchmarks that need more
books than the bundled snapshot: ``rows`` books over 50 categories with varied titles and
descriptions, the same catalogue every run, loaded by ``INSERT … SELECT … FROM
generate_series`` into a migrated database (about 5 s for 100k books)."""

from __future__ import annotations

import re

from bench.harness import connect

CATEGORIES = [
    "Travel", "Mystery", "Historical Fiction", "Sequential Art", "Classics", "Philosophy",
    "Romance", "Womens Fiction", "Fiction", "Childrens", "Religion", "Nonfiction", "Music",
    "Science Fiction", "Sports and Games", "Fantasy", "New Adult", "Young Adult", "Science",
    "Poetry", "Paranormal", "Art", "Psychology", "Autobiography", "Parenting", "Adult Fiction",
    "Humor", "Horror", "History", "Food and Drink", "Christian Fiction", "Business", "Biography",
    "Thriller", "Contemporary", "Spirituality", "Academic", "Self Help", "Historical",
    "Christian", "Suspense", "Short Stories", "Novels", "Health", "Politics", "Cultural",
    "Erotica", "Crime", "Default", "Add a comment",
]  # fmt: skip


WORDS = {
    "first": ["The", "A", "Every", "Our", "Their", "My", "No", "One", "Last", "First"],
    "adjectives": [
        "Silent", "Crimson", "Hidden", "Broken", "Golden", "Midnight", "Wild", "Distant",
        "Quiet", "Burning", "Frozen", "Secret", "Lost", "Little", "Endless", "Paper", "Iron",
        "Glass", "Summer", "Winter",
    ],
    "nouns": [
        "Garden", "River", "House", "Kingdom", "Letters", "Sea", "City", "Road", "Heart",
        "Promise", "Mountain", "Library", "Daughter", "Machine", "Orchard", "Harbour",
        "Empire", "Storm", "Journey", "Bridge", "Clockmaker", "Lighthouse", "Wolves", "Stars",
        "Station",
    ],
    "subtitles": [
        "A Novel", "A Memoir", "Stories", "A History of Everything", "The Complete Guide",
        "Poems", "An Introduction", "Recipes for Every Season",
    ],
    "series": [
        "The Chronicles of Ash", "Harbour Lights", "Saga", "The Iron Circle", "Moonfall",
        "The Clockwork Trilogy", "Lumberjanes", "Starfarers",
    ],
    "sentences": [
        "It is a story about the things we keep and the things we give away.",
        "When the letters stop arriving, she sets out to find out why.",
        "Set in a small town on the edge of the moors, the novel follows three generations.",
        "A sharp, funny and unexpectedly moving debut.",
        "He had never meant to become a thief, let alone a famous one.",
        "The war is over, but for the people of the valley the fighting has only just begun.",
        "Part detective story, part love letter to the city, it is impossible to put down.",
        "Nobody in the village has seen the lighthouse keeper for thirty years.",
        "With recipes, maps and a great deal of advice, this is the book every traveller needs.",
        "Told in alternating chapters, the two voices slowly converge.",
        "The New York Times bestseller, now in paperback.",
        "What would you do if you could live one day of your life again?",
        "An unforgettable portrait of friendship, ambition and the price of success.",
        "She knows the rules: never look back, never trust the river, never go out after dark.",
        "Drawing on decades of research, the author shows how small habits shape our lives.",
        "A thrilling conclusion to the series that readers have waited years for.",
    ],
}  # fmt: skip

# h: a multiplicative hash of the row number, varied values without random() (the same
# catalogue every run); its quotients by small primes pick each part. Titles: four forms,
# a sixth with a subtitle, a fifth in a series ("(Moonfall, #3)"), a few omnibus ranges.
LOAD_BOOKS = """
INSERT INTO books (upc, title, product_type, price_excl_tax_pence, price_incl_tax_pence,
    tax_pence, currency, availability, rating, num_reviews, image_url, product_url,
    category_id, first_seen_at, last_seen_at)
SELECT upc, title, 'Books', pence, pence, 0, 'GBP', h / 7 %% 23, 1 + h / 13 %% 5,
    h / 17 %% 4, 'https://books.toscrape.com/media/cache/' || upc || '.jpg',
    'https://books.toscrape.com/catalogue/book_' || i || '/index.html',
    (%(categories)s::int[])[1 + h / 19 %% 50], now(), now()
FROM (
    SELECT i, h, left(md5('bench' || i), 16) AS upc, 999 + h / 23 %% 5000 AS pence,
        CASE h %% 4
            WHEN 0 THEN (%(first)s::text[])[1 + h / 29 %% 10]
                || ' ' || (%(adjectives)s::text[])[1 + h / 31 %% 20]
                || ' ' || (%(nouns)s::text[])[1 + h / 37 %% 25]
            WHEN 1 THEN (%(adjectives)s::text[])[1 + h / 29 %% 20]
                || ' ' || (%(nouns)s::text[])[1 + h / 31 %% 25]
            WHEN 2 THEN (%(first)s::text[])[1 + h / 29 %% 10]
                || ' ' || (%(nouns)s::text[])[1 + h / 31 %% 25]
                || ' of ' || (%(adjectives)s::text[])[1 + h / 37 %% 20]
                || ' ' || (%(nouns)s::text[])[1 + h / 41 %% 25]
            ELSE (%(nouns)s::text[])[1 + h / 29 %% 25]
        END
        || CASE WHEN h / 43 %% 6 = 0
            THEN ': ' || (%(subtitles)s::text[])[1 + h / 47 %% 8] ELSE '' END
        || CASE
            WHEN h / 53 %% 5 = 0 THEN ' (' || (%(series)s::text[])[1 + h / 59 %% 8]
                || ', #' || 1 + h / 61 %% 12 || ')'
            WHEN h / 53 %% 23 = 1 THEN ' (' || (%(series)s::text[])[1 + h / 59 %% 8]
                || ' #' || 1 + h / 61 %% 6 || '-' || 4 + h / 61 %% 6 || ')'
            ELSE ''
        END AS title
    FROM (
        SELECT i, i::bigint * 2654435761 %% 4294967296 AS h
        FROM generate_series(1, %(rows)s) AS i
    ) AS numbered
) AS made
"""
# one to eight sentences from the pool; one book in fifty has no description
LOAD_DESCRIPTIONS = """
INSERT INTO book_descriptions (book_id, description)
SELECT id, array_to_string(ARRAY(
    SELECT (%(sentences)s::text[])[1 + h / (7 + j * 3) %% 16]
    FROM generate_series(0, h / 11 %% 8) AS j
), ' ')
FROM (SELECT id, id::bigint * 2654435761 %% 4294967296 AS h FROM books) AS hashed
WHERE h / 3 %% 50 <> 7
"""


def load_catalog(url: str, rows: int) -> None:
    """The synthetic catalogue; triggers (search index, stale features) off while loading."""
    with connect(url) as conn:
        conn.cursor().executemany(
            "INSERT INTO categories (name, slug) VALUES (%s, %s)",
            [(name, re.sub(r"[^a-z0-9]+", "-", name.lower())) for name in CATEGORIES],
        )
        ids = [i for (i,) in conn.execute("SELECT id FROM categories ORDER BY id")]
        with conn.transaction():
            # The search index's row triggers (a tsvector per book, again per description)
            # make the load ten times slower (48 s instead of 5 s for 100k books), and the
            # bench reads no search table. The book_features triggers are on again, with the
            # others, before anything reads the tables.
            for name in ("books", "book_descriptions"):
                conn.execute(f"ALTER TABLE {name} DISABLE TRIGGER USER")
            conn.execute(LOAD_BOOKS, {"rows": rows, "categories": ids, **WORDS})
            conn.execute(LOAD_DESCRIPTIONS, WORDS)
            for name in ("books", "book_descriptions"):
                conn.execute(f"ALTER TABLE {name} ENABLE TRIGGER USER")
            # what the new-book trigger would have recorded
            conn.execute("INSERT INTO book_features_pending (book_id) SELECT id FROM books")
        conn.execute("VACUUM (ANALYZE) categories, books, book_descriptions")
