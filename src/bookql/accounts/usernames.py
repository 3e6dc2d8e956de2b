"""Usernames and e-mail addresses: normalised once, so look-ups and uniqueness agree."""

from __future__ import annotations

import re
import unicodedata

from bookql.core.errors import BadUserInput

_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalise_username(raw: str) -> str:
    """NFKC, trimmed, case-folded: "  Alice " and "alice" are one user."""
    return unicodedata.normalize("NFKC", raw).strip().casefold()


def checked_username(raw: str) -> str:
    username = normalise_username(raw)
    if not _USERNAME.match(username):
        raise BadUserInput(
            "a username has 3 to 64 characters: letters a-z, digits, '.', '_' or '-', "
            "starting with a letter or digit",
            field="username",
        )
    return username


def checked_email(raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    email = unicodedata.normalize("NFKC", raw).strip()
    local, _, domain = email.rpartition("@")
    email = f"{local}@{domain.lower()}"
    if len(email) > 320 or not _EMAIL.match(email):
        raise BadUserInput("not an e-mail address", field="email")
    return email
