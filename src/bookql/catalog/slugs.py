"""Slugs: the name, lower case, hyphenated ("Historical Fiction" -> "historical-fiction")."""

import re
import unicodedata

_NOT_WORD = re.compile(r"[^a-z0-9]+")


def slugify(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = _NOT_WORD.sub("-", ascii_name.lower()).strip("-")
    if not slug:
        raise ValueError(f"cannot make a slug of {name!r}")
    return slug
