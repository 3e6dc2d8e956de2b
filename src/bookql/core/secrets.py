"""The JWT signing key: from ``BOOKQL_JWT_SECRET``, or in development a file in the data dir.

The development key is made once (0600) and shared by every worker and command using the
same data dir; creation is atomic, so two processes starting together agree on one key.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from bookql.core.config import Settings
from bookql.core.errors import ConfigError

SECRET_FILE = ".jwt_secret"  # noqa: S105 - a file name


def _read_or_create(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(48))
    try:
        os.link(temporary, path)  # fails if another process won the race: use theirs
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
    return path.read_text().strip()


def signing_key(settings: Settings) -> str:
    if settings.jwt_secret is not None and settings.jwt_secret.get_secret_value():
        return settings.jwt_secret.get_secret_value()
    if settings.is_production:
        raise ConfigError("production needs a signing key: set BOOKQL_JWT_SECRET")
    try:
        return _read_or_create(settings.data_dir / SECRET_FILE)
    except OSError as exc:
        raise ConfigError(
            f"cannot keep the development signing key in {settings.data_dir}: {exc.strerror}; "
            "set BOOKQL_JWT_SECRET or BOOKQL_DATA_DIR"
        ) from None
