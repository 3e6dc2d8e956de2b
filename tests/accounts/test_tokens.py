"""JWT handling: every way a token can be wrong is refused, named precisely in tests."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path

import jwt
import pytest

from bookql.accounts.tokens import InvalidToken, TokenCodec, TokenType
from bookql.core.config import Settings
from bookql.core.errors import ConfigError
from bookql.core.secrets import signing_key
from bookql.db.types import utcnow

SECRET = "s" * 64


@pytest.fixture
def codec(tmp_path: Path) -> TokenCodec:
    return TokenCodec(Settings(jwt_secret=SECRET, data_dir=tmp_path))


def _claims(**overrides: object) -> dict[str, object]:
    now = int(utcnow().timestamp())
    claims: dict[str, object] = {
        "typ": "access",
        "sub": "1",
        "ver": 0,
        "iat": now,
        "exp": now + 600,
        "jti": "j",
        "iss": "bookql",
        "aud": "bookql-api",
        "fam": "session",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def test_round_trip(codec: TokenCodec) -> None:
    issued = codec.issue(TokenType.ACCESS, user_id=7, token_version=3, now=utcnow(), family_id="f")
    claims = codec.decode(issued.token, TokenType.ACCESS)
    assert (claims.user_id, claims.token_version, claims.type) == (7, 3, TokenType.ACCESS)
    assert claims.family_id == "f"
    assert claims.expires_at - claims.issued_at == timedelta(minutes=15)


@pytest.mark.parametrize(
    ("token_factory", "complaint"),
    [
        (
            lambda: f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims())}.",
            "alg value is not allowed",
        ),
        (
            lambda: jwt.encode(_claims(), "another-secret-of-enough-length!!", algorithm="HS256"),
            "Signature",
        ),
        (lambda: jwt.encode(_claims(), SECRET, algorithm="HS512"), "alg value is not allowed"),
        (lambda: jwt.encode(_claims(exp=None), SECRET, algorithm="HS256"), "exp"),
        (lambda: jwt.encode(_claims(exp=1), SECRET, algorithm="HS256"), "expired"),
        (lambda: jwt.encode(_claims(aud="someone-else"), SECRET, algorithm="HS256"), "Audience"),
        (lambda: jwt.encode(_claims(iss="evil"), SECRET, algorithm="HS256"), "issuer"),
        (lambda: jwt.encode(_claims(jti=None), SECRET, algorithm="HS256"), "jti"),
        (lambda: jwt.encode(_claims(fam=None), SECRET, algorithm="HS256"), "fam"),
        (lambda: jwt.encode(_claims(fam=""), SECRET, algorithm="HS256"), "without a session"),
        (
            lambda: jwt.encode(_claims(typ="refresh", fam="f"), SECRET, algorithm="HS256"),
            "not an access",
        ),
        (lambda: "not.a.token", "Invalid"),
    ],
    ids=[
        "alg-none",
        "wrong-signature",
        "wrong-algorithm",
        "no-exp",
        "past-exp",
        "wrong-aud",
        "wrong-iss",
        "no-jti",
        "no-session",
        "empty-session",
        "refresh-as-access",
        "garbage",
    ],
)
def test_bad_access_tokens_are_refused(
    codec: TokenCodec, token_factory: object, complaint: str
) -> None:
    token = token_factory()  # type: ignore[operator]
    with pytest.raises(InvalidToken, match=complaint):
        codec.decode(token, TokenType.ACCESS)


def test_access_token_is_not_a_refresh_token(codec: TokenCodec) -> None:
    issued = codec.issue(TokenType.ACCESS, user_id=1, token_version=0, now=utcnow(), family_id="f")
    with pytest.raises(InvalidToken, match="not an refresh"):
        codec.decode(issued.token, TokenType.REFRESH)


def test_development_secret_is_made_once_and_private(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first = signing_key(settings)
    assert signing_key(Settings(data_dir=tmp_path)) == first
    secret_file = tmp_path / ".jwt_secret"
    assert secret_file.stat().st_mode & 0o777 == 0o600
    assert len(first) >= 48


def test_production_never_invents_a_secret(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="BOOKQL_JWT_SECRET"):
        signing_key(Settings(env="production", data_dir=tmp_path))
    assert not (tmp_path / ".jwt_secret").exists()
