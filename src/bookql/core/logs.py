"""Structured logs: one JSON object a line, the request id on every line written for a request.

structlog renders, and the standard library's loggers (ours, uvicorn's, SQLAlchemy's,
Scrapy's) go through the same processors, so every line has the same shape whoever wrote
it. Secrets are removed before rendering, by key (``password``, ``token``…) and by pattern
(bearer tokens, JWTs, passwords in URLs), exception text included: a log line never
carries one.
"""

from __future__ import annotations

import itertools
import logging
import logging.config
import re
from collections.abc import MutableMapping
from typing import Any, Literal

import orjson
import structlog
from structlog.types import EventDict, Processor

LogFormat = Literal["json", "console"]
REDACTED = "[redacted]"
_SENSITIVE_WORDS = {"pass", "password", "passwd", "passphrase", "secret", "token", "apikey"}
_SENSITIVE_WORDS |= {"authorization", "cookie"} | {f"{word}s" for word in _SENSITIVE_WORDS}
_KEY_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_SENSITIVE_TEXT = [
    (re.compile(r"(?i)(bearer\s+)[^\s\"',]+"), rf"\1{REDACTED}"),
    (re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]+"), REDACTED),  # a JWT anywhere
    (re.compile(r"(://[^/:@\s]+:)[^@/\s]+@"), rf"\1{REDACTED}@"),  # user:password@host
    (re.compile(r"(?i)\b(password|secret|token)(\s*[=:]\s*)[^\s,;&]+"), rf"\1\2{REDACTED}"),
]


def scrub(text: str) -> str:
    """``text`` without anything that looks like a secret."""
    for pattern, replacement in _SENSITIVE_TEXT:
        text = pattern.sub(replacement, text)
    return text


def sensitive_key(key: str) -> bool:
    """Whether a field's name says it holds a secret: ``password``, ``access_token``,
    ``jwtSecret``, ``api-key``; not ``passed`` or ``tokenizer``."""
    words = [word.lower() for word in _KEY_WORD.findall(key)]
    pairs = {first + second for first, second in itertools.pairwise(words)}
    return not _SENSITIVE_WORDS.isdisjoint(words) or "apikey" in pairs


def redact_secrets(_logger: Any, _method: str, event: EventDict) -> EventDict:
    for key, value in list(event.items()):
        if sensitive_key(key):
            event[key] = REDACTED
        elif isinstance(value, str):
            event[key] = scrub(value)
    return event


def _dumps(event: MutableMapping[str, Any], **_: Any) -> str:
    return orjson.dumps(event, default=str).decode()


def structured_formatter(log_format: LogFormat = "json") -> logging.Formatter:
    """The formatter every handler uses; configures structlog too, since a worker process
    started by uvicorn builds its logging from :func:`logging_config` alone."""
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer(serializer=_dumps)
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
    )


def logging_config(level: str = "INFO", log_format: LogFormat = "json") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the whole process: one handler on stderr, every
    logger (uvicorn's included, whose own handlers would print a second, plain line)
    propagating to it. uvicorn applies it in each worker process it starts."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structured": {"()": structured_formatter, "log_format": log_format},
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "structured",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            name: {"handlers": [], "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }


def configure_logging(level: str = "INFO", log_format: LogFormat = "json") -> None:
    """Route every logger of this process through structlog, rendering ``log_format``."""
    logging.config.dictConfig(logging_config(level, log_format))
