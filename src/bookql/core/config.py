"""Settings, read once from the environment (prefix ``BOOKQL_``) with pydantic-settings.

The data directory anchors every default path, so that ``scrapy crawl books`` run in
``crawler/`` and ``bookql serve`` run at the root open the same database file.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import platformdirs
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bookql.core.errors import ConfigError

MIN_SECRET_LENGTH = 32
_INSECURE_SECRETS = frozenset({"secret", "changeme", "change-me", "changethis", "development"})


def checkout_root() -> Path | None:
    """The repository root when running from a source checkout (``pip install -e .``)."""
    root = Path(__file__).resolve().parents[3]
    if (root / "pyproject.toml").is_file() and (root / "src" / "bookql").is_dir():
        return root
    return None


def default_data_dir() -> Path:
    return checkout_root() or Path(platformdirs.user_data_dir("bookql", appauthor=False))


_DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST = re.compile(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\]")


def browser_origin(text: str) -> str:
    """``text`` as browsers write an ``Origin`` (lower case, no default port), so that an
    exact comparison works; ``ValueError`` unless it is ``http(s)://host[:port]``.

    ``*`` is refused: tokens need no cookies, but the list also guards WebSocket upgrades,
    and the contract promises exact origins."""
    if text == "*":
        raise ValueError("`*` is not accepted: list each origin as scheme://host[:port]")
    expected = f"{text!r} is not an origin: expected http(s)://host[:port]"
    parts = urlsplit(text.strip())
    netloc = parts.netloc.lower()
    host = netloc.rsplit(":", 1)[0] if not netloc.endswith("]") else netloc
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{expected} (bad port)") from None
    if parts.scheme.lower() not in _DEFAULT_PORTS or "@" in netloc or not _HOST.fullmatch(host):
        raise ValueError(expected)
    if parts.path or parts.query or parts.fragment or text.strip().endswith(("?", "#")):
        raise ValueError(f"{expected} (no path, not even /)")
    scheme = parts.scheme.lower()
    return f"{scheme}://{host}" + (f":{port}" if port not in (None, _DEFAULT_PORTS[scheme]) else "")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BOOKQL_", extra="ignore")

    env: Literal["development", "production"] = "development"
    debug: bool = False
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = Field(
        default="json", description="one JSON object a line, or aligned text for a terminal"
    )
    access_log: bool = Field(default=True, description="a log line for every HTTP request")
    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = None
    db_pool_size: int = Field(default=10, ge=1)
    db_pool_timeout: float = Field(default=10.0, gt=0)
    db_statement_timeout_ms: int = Field(default=30_000, ge=0)
    auto_migrate: bool = Field(
        default=True, description="`bookql serve` migrates the database to head first"
    )
    auto_seed: bool = Field(
        default=True,
        description="`bookql serve` loads the bundled snapshot into an empty catalogue",
    )
    jwt_secret: SecretStr | None = None
    jwt_issuer: str = "bookql"
    jwt_audience: str = "bookql-api"
    access_token_ttl_seconds: int = Field(default=15 * 60, ge=60, le=24 * 3600)
    refresh_token_ttl_seconds: int = Field(default=14 * 24 * 3600, ge=3600)
    registration_open: bool = True
    password_min_length: int = Field(default=8, ge=8)
    password_max_length: int = Field(default=256, ge=16, le=4096)
    # argon2id cost; the floor is OWASP's minimum (19 MiB, 2 passes, 1 lane).
    argon2_time_cost: int = Field(default=3, ge=2)
    argon2_memory_kib: int = Field(default=65_536, ge=19_456)
    argon2_parallelism: int = Field(default=4, ge=1)
    password_hash_concurrency: int = Field(
        default=2, ge=1, description="argon2 computations at once per process (threads)"
    )
    # GraphQL protection: every limit refuses with QUERY_TOO_COMPLEX (or TIMEOUT).
    max_query_bytes: int = Field(default=100_000, ge=1_000)
    max_query_tokens: int = Field(default=5_000, ge=100)
    max_query_depth: int = Field(default=12, ge=2)
    max_query_aliases: int = Field(default=30, ge=0)
    max_query_cost: int = Field(
        default=50_000, ge=100, description="objects a query may ask for, nested pages multiplied"
    )
    max_request_bytes: int = Field(default=2_000_000, ge=10_000)
    max_header_bytes: int = Field(
        default=16_384, ge=4_096, description="all of a request's headers together"
    )
    max_concurrent_exports: int = Field(
        default=4,
        ge=1,
        description="training-data streams at once per process (each holds a "
        "database connection while it runs)",
    )
    request_timeout_seconds: float = Field(default=30.0, gt=0)
    shutdown_grace_seconds: int = Field(
        default=30,
        ge=0,
        description="on SIGTERM, how long requests and streams in flight may still run",
    )
    compiled_queries: bool = Field(
        default=True,
        description="serve the catalogue queries it covers through compiled plans "
        "(false: Strawberry's executor for everything)",
    )
    http_cache: bool = Field(
        default=True,
        description="anonymous GET queries of the public catalogue get an ETag, Cache-Control "
        "and 304 answers (false: every answer is no-store)",
    )
    http_cache_max_age_seconds: int = Field(
        default=60,
        ge=0,
        le=86_400,
        description="how long a cache may reuse a public answer before asking again "
        "(Cache-Control max-age; 0: revalidate every time, a 304 while nothing changed)",
    )
    introspection: bool | None = Field(
        default=None, description="GraphQL introspection; default: on except in production"
    )
    models_dir: Path | None = None
    redis_url: str | None = None
    public_catalogue: bool = True
    crawl_allowed_hosts: Annotated[list[str], NoDecode] = ["books.toscrape.com"]
    crawl_start_url: str = "https://books.toscrape.com/"
    crawl_settings: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="Scrapy settings for crawls the API starts: NAME=VALUE,NAME=VALUE",
    )
    crawler_dir: Path | None = Field(
        default=None,
        description="the Scrapy project (scrapy.cfg); default: crawler/ of the checkout",
    )
    # Queued jobs (crawls, trainings): who runs them, and how a lost worker is noticed.
    run_jobs_in_server: bool | None = Field(
        default=None,
        description="the API process runs queued jobs too; default: on with the embedded "
        "SQLite, off with PostgreSQL (run `bookql worker`)",
    )
    job_concurrency: int = Field(default=2, ge=1, description="jobs at once per worker process")
    job_lease_seconds: float = Field(
        default=60.0, gt=0, description="a claim lapses when its worker stays silent this long"
    )
    job_max_attempts: int = Field(default=3, ge=1)
    job_retry_delay_seconds: float = Field(
        default=10.0, ge=0, description="wait before a retry, doubled at each further attempt"
    )
    job_poll_seconds: float = Field(default=1.0, gt=0, description="an idle worker's poll")
    job_shutdown_grace_seconds: float = Field(
        default=30.0, ge=0, description="a stopping worker's wait before it releases its jobs"
    )
    job_retention_days: float = Field(
        default=30.0,
        ge=0,
        description="workers delete finished jobs older than this (hourly); 0 keeps them all",
    )
    # CORS: which browser apps on other origins may call the API (bookql.server.cors).
    cors_origins: Annotated[list[str] | None, NoDecode] = Field(
        default=None,
        description="origins (scheme://host[:port], comma-separated, exact) whose pages may "
        "call the API; default: any port of localhost and 127.0.0.1 in development, none in "
        "production; empty: none",
    )
    cors_max_age_seconds: int = Field(
        default=600,
        ge=0,
        le=86_400,
        description="how long a browser may cache a preflight's answer (Chromium caps it at 2 h)",
    )

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("cors_origins", mode="after")
    @classmethod
    def _exact_origins(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else list(dict.fromkeys(map(browser_origin, value)))

    # Login throttling and the proxies trusted to name the client's address.
    login_max_failures_per_user_and_address: int = Field(
        default=5,
        ge=1,
        le=1_000,
        description="failed logins for one username from one address that refuse that "
        "pair for the window (the real user elsewhere still signs in)",
    )
    login_max_failures_per_address: int = Field(
        default=20,
        ge=1,
        le=100_000,
        description="failed logins from one address, any usernames, that refuse the address",
    )
    login_slowdown_failures_per_user: int = Field(
        default=100,
        ge=1,
        le=100_000,
        description="failed logins for one username from any addresses after which each "
        "attempt for it waits BOOKQL_LOGIN_SLOWDOWN_SECONDS (never refused)",
    )
    login_slowdown_seconds: float = Field(
        default=2.0, ge=0, le=30, description="the wait of a slowed-down username's attempts"
    )
    login_failure_window_seconds: int = Field(
        default=15 * 60,
        ge=1,
        le=7 * 24 * 3600,
        description="how long a failed login counts (a sliding window)",
    )
    login_max_failures_per_user: int | None = Field(
        default=None,
        description="removed: refused at start, naming the settings that replace it",
    )
    forwarded_allow_ips: str = Field(
        default="127.0.0.1",
        description="proxies whose X-Forwarded-For is believed (comma-separated addresses "
        "or networks, `*` for any), passed to uvicorn; wins over FORWARDED_ALLOW_IPS",
    )
    # Nesting, connection and stream limits: what one client may hold open or send.
    max_json_depth: int = Field(
        default=32,
        ge=4,
        le=200,
        description="levels of lists and objects a variable's value may nest (a request "
        "body: 3 more, for the batch, the operation and `variables`); deeper is BAD_USER_INPUT",
    )
    ws_max_connections: int = Field(
        default=1_000, ge=1, description="WebSocket connections at once per process (503)"
    )
    ws_max_connections_per_address: int = Field(
        default=20, ge=1, description="WebSocket connections at once per client address (429)"
    )
    ws_max_subscriptions: int = Field(
        default=20,
        ge=1,
        le=1_000,
        description="operations at once on one WebSocket; one more is RATE_LIMITED",
    )
    ws_idle_timeout_seconds: float = Field(
        default=300.0,
        gt=0,
        description="a WebSocket with no operation running and no message but pings for "
        "this long is closed (1000)",
    )
    max_streams_per_user: int = Field(
        default=4,
        ge=1,
        description="subscriptions one user may run at once (WebSocket, SSE, multipart), "
        "across workers through Redis when configured",
    )
    max_exports_per_user: int = Field(
        default=2,
        ge=1,
        description="`/export/training-data` downloads one user may run at once, across "
        "workers through Redis when configured",
    )
    stream_slot_lease_seconds: float = Field(
        default=30.0,
        ge=2,
        le=3_600,
        description="a user's stream or export slot in Redis lapses unless its worker "
        "renews it (every third of this): a killed worker's slots free themselves",
    )
    # Persisted queries (bookql.server.persisted): Apollo's APQ and trusted documents.
    persisted_queries: bool = Field(
        default=True,
        description="Apollo's automatic persisted queries: a client may send a query's "
        "sha256 alone once the server has it",
    )
    persisted_queries_ttl_seconds: int = Field(
        default=7 * 24 * 3600,
        ge=60,
        description="how long a registered query stays in Redis unless used again",
    )
    persisted_queries_max_entries: int = Field(
        default=10_000,
        ge=10,
        description="registered queries kept (per process, or in Redis across workers); "
        "the least recently registered go first",
    )
    persisted_queries_max_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=100_000,
        description="the text a process keeps of registered queries without Redis",
    )
    trusted_documents: Path | None = Field(
        default=None,
        description="a JSON manifest of known operations, read at start "
        "(GraphQL Code Generator's persisted-documents.json, Relay's, or Apollo's)",
    )
    trusted_documents_only: bool = Field(
        default=False,
        description="refuse every document not in the manifest (administrators excepted) "
        "and every persisted-query registration",
    )
    # live sessions: sockets and streams act as their users are now
    session_poll_seconds: float = Field(
        default=1.0,
        ge=0.05,
        le=1.0,
        description=(
            "how often a process re-reads the users it holds sockets or streams for, where "
            "change notices cannot reach it (SQLite without Redis, a notice listener "
            "reconnecting): the longest a change takes to reach a socket there"
        ),
    )

    @field_validator("crawl_allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            return [host.strip().lower() for host in value.split(",") if host.strip()]
        return value

    @field_validator("crawl_settings", mode="before")
    @classmethod
    def _split_settings(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        pairs = [item.partition("=") for item in value.split(",") if item.strip()]
        if any(not sep or not name.strip() for name, sep, _ in pairs):
            raise ValueError("expected NAME=VALUE,NAME=VALUE")
        return {name.strip(): setting.strip() for name, _, setting in pairs}

    @field_validator("login_max_failures_per_user", mode="after")
    @classmethod
    def _removed_per_user_limit(cls, value: int | None) -> int | None:
        if value is not None:
            raise ValueError(
                "removed: a username is no longer locked from every address. Set "
                "BOOKQL_LOGIN_MAX_FAILURES_PER_USER_AND_ADDRESS (refuses one username at one "
                "address) and BOOKQL_LOGIN_SLOWDOWN_FAILURES_PER_USER (slows one username's "
                "logins from every address) instead"
            )
        return value

    @field_validator("forwarded_allow_ips", mode="after")
    @classmethod
    def _proxy_addresses(cls, value: str) -> str:
        entries = [entry.strip() for entry in value.split(",") if entry.strip()]
        for entry in entries:
            if entry == "*":
                continue
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network (or `*`)") from None
        return ",".join(entries)

    @field_validator("redis_url", mode="after")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("expected redis://HOST:PORT/DB, rediss://… or unix://…")
        return value or None

    @field_validator("data_dir", "models_dir", "crawler_dir", "trusted_documents", mode="after")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return value.expanduser().resolve() if value is not None else None

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'bookql.db'}"

    @property
    def effective_crawler_dir(self) -> Path | None:
        root = checkout_root()
        return self.crawler_dir or (root / "crawler" if root is not None else None)

    @property
    def introspection_enabled(self) -> bool:
        return self.introspection if self.introspection is not None else not self.is_production

    @property
    def effective_models_dir(self) -> Path:
        return self.models_dir or self.data_dir / "models_store"

    @property
    def jobs_in_server(self) -> bool:
        if self.run_jobs_in_server is not None:
            return self.run_jobs_in_server
        return self.effective_database_url.startswith("sqlite")

    def check_production(self) -> None:
        """Refuse the insecure development defaults when ``BOOKQL_ENV=production``."""
        if not self.is_production:
            return
        secret = self.jwt_secret.get_secret_value() if self.jwt_secret else ""
        if not secret:
            raise ConfigError("production needs a signing key: set BOOKQL_JWT_SECRET")
        if len(secret) < MIN_SECRET_LENGTH or secret.lower() in _INSECURE_SECRETS:
            raise ConfigError(
                f"BOOKQL_JWT_SECRET is too weak for production: use at least "
                f"{MIN_SECRET_LENGTH} random characters"
            )
        if self.debug:
            raise ConfigError("production refuses debug mode: unset BOOKQL_DEBUG")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"BOOKQL_{'_'.join(str(part) for part in error['loc']).upper()}: {error['msg']}"
            for error in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None
