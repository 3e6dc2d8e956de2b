"""Expired tokens made on demand: the one kind of refusal a client mends by refreshing.

An access token for a real session, signed with the server's key, issued an hour ago: valid
in every way but its age. Nothing waits for a token to expire (the shortest lifetime the
settings accept is a minute).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from bookql.accounts.tokens import TokenCodec, TokenType
from bookql.core.config import Settings
from bookql.db.types import utcnow


def codec(secret: str, data_dir: Path) -> TokenCodec:
    return TokenCodec(Settings(jwt_secret=secret, data_dir=data_dir))


def expired_twin(codec: TokenCodec, token: str, kind: TokenType = TokenType.ACCESS) -> str:
    """A token of ``token``'s user and session that expired a while ago."""
    claims = codec.decode(token, kind)
    return codec.issue(
        kind,
        user_id=claims.user_id,
        token_version=claims.token_version,
        now=utcnow() - timedelta(days=30),
        family_id=claims.family_id,
    ).token
