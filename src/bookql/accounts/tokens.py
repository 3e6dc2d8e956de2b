"""JWT access and refresh tokens (pyjwt, HS256).

Every token carries ``typ``, ``sub``, ``iat``, ``exp``, ``jti``, ``iss``, ``aud`` and ``fam``,
the session (the refresh-token family of one login), so that ending a session refuses its
access tokens too; decoding names the one accepted algorithm and requires every claim, and
the ``typ`` keeps an access token from being used as a refresh token or the other way round.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import jwt

from bookql.core.config import Settings
from bookql.core.secrets import signing_key

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["typ", "sub", "iat", "exp", "jti", "iss", "aud", "ver", "fam"]


class TokenType(StrEnum):
    ACCESS = "access"
    REFRESH = "refresh"


class InvalidToken(Exception):
    """The token is malformed, forged, expired, of the wrong type or audience."""


class ExpiredToken(InvalidToken):
    """A token this server signed, of the expected type, valid in every way but its age:
    the one failure a client can mend by itself (refresh), so it is told apart."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    type: TokenType
    user_id: int
    token_version: int
    jti: str
    family_id: str
    issued_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    claims: TokenClaims


class TokenCodec:
    def __init__(self, settings: Settings) -> None:
        self._key = signing_key(settings)
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._ttl = {
            TokenType.ACCESS: timedelta(seconds=settings.access_token_ttl_seconds),
            TokenType.REFRESH: timedelta(seconds=settings.refresh_token_ttl_seconds),
        }

    def ttl_seconds(self, kind: TokenType) -> int:
        return int(self._ttl[kind].total_seconds())

    def issue(
        self,
        kind: TokenType,
        *,
        user_id: int,
        token_version: int,
        now: datetime,
        family_id: str,
    ) -> IssuedToken:
        claims = TokenClaims(
            type=kind,
            user_id=user_id,
            token_version=token_version,
            jti=secrets.token_urlsafe(24),
            family_id=family_id,
            issued_at=now,
            expires_at=now + self._ttl[kind],
        )
        payload: dict[str, Any] = {
            "typ": kind.value,
            "sub": str(user_id),
            "ver": token_version,
            "iat": int(now.timestamp()),
            "exp": int(claims.expires_at.timestamp()),
            "jti": claims.jti,
            "iss": self._issuer,
            "aud": self._audience,
            "fam": family_id,
        }
        return IssuedToken(jwt.encode(payload, self._key, algorithm=ALGORITHM), claims)

    def decode(self, token: str, expected: TokenType) -> TokenClaims:
        try:
            return self._claims(self._payload(token, check_expiry=True), expected)
        except jwt.ExpiredSignatureError as exc:
            expired = str(exc)
        # The signature is checked before the expiry, so this server signed it; "expired" is
        # the answer only if every other check (audience, issuer, type, claims) passes too.
        self._claims(self._payload(token, check_expiry=False), expected)
        raise ExpiredToken(expired)

    def _payload(self, token: str, *, check_expiry: bool) -> dict[str, Any]:
        try:
            payload: dict[str, Any] = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": REQUIRED_CLAIMS, "verify_exp": check_expiry},
            )
        except jwt.ExpiredSignatureError:
            raise
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from None
        return payload

    def _claims(self, payload: dict[str, Any], expected: TokenType) -> TokenClaims:
        if payload.get("typ") != expected.value:
            raise InvalidToken(f"this is not an {expected.value} token")
        try:
            user_id = int(payload["sub"])
            version = int(payload["ver"])
        except (TypeError, ValueError):
            raise InvalidToken("malformed subject or version") from None
        family = payload["fam"]
        if not isinstance(family, str) or not family:
            raise InvalidToken("token without a session")
        return TokenClaims(
            type=expected,
            user_id=user_id,
            token_version=version,
            jti=str(payload["jti"]),
            family_id=family,
            issued_at=datetime.fromtimestamp(payload["iat"], UTC),
            expires_at=datetime.fromtimestamp(payload["exp"], UTC),
        )
