"""``bookql users``: accounts made from the shell, passwords never in arguments."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from bookql.cli.common import async_engine, echo_outcome, migrated_settings

users_app = typer.Typer(help="User accounts.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")


def _read_password() -> str:
    """From a hidden prompt (typed twice) on a terminal, else the first line of stdin."""
    if sys.stdin.isatty():
        password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        return password
    return sys.stdin.readline().rstrip("\r\n")


@users_app.command("create")
def users_create(
    username: Annotated[str, typer.Argument(help="The new user's name.")],
    admin: Annotated[bool, typer.Option("--admin", help="Make an administrator.")] = False,
    email: Annotated[str | None, typer.Option(help="E-mail address.")] = None,
) -> None:
    """Create a user; the password is read from a prompt or stdin, never from arguments."""
    from bookql.accounts.setup import build_accounts
    from bookql.accounts.tables import Role
    from bookql.db.blocking import BlockingDatabase

    settings = migrated_settings()
    password = _read_password()

    async def run() -> str:
        async with async_engine(settings) as engine:
            blocking = BlockingDatabase.for_settings(settings)
            try:
                accounts = build_accounts(settings, engine, None, blocking)
                role = Role.ADMIN if admin else Role.USER
                row = await accounts.create_user(username, password, email=email, role=role)
                return f"created {role.value.lower()} {row.username}"
            finally:
                blocking.close()

    echo_outcome(run)
