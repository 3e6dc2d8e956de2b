"""The contract's permission table as Strawberry permission classes.

Each raises the contract's error itself (``UNAUTHENTICATED`` or ``FORBIDDEN``) so that the
code, not Strawberry's generic message, reaches the client.
"""

from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission

from bookql.accounts.auth import RequestAuth
from bookql.accounts.graphql.context import Info
from bookql.core.config import Settings
from bookql.core.errors import Unauthenticated


async def require_catalog_reader(auth: RequestAuth, settings: Settings) -> None:
    """Anyone while the catalogue is public; signed-in users otherwise."""
    viewer = await auth.viewer()  # refuses bad credentials either way
    if viewer is None and not settings.public_catalogue:
        raise Unauthenticated("the catalogue is private: sign in first")


async def check_catalog_access(info: Info) -> None:
    await require_catalog_reader(info.context.auth, info.context.settings)


class CanReadCatalog(BasePermission):
    async def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        await check_catalog_access(info)
        return True


class IsAuthenticated(BasePermission):
    async def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        await info.context.auth.require_user()
        return True


class IsAdmin(BasePermission):
    async def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        await info.context.auth.require_admin()
        return True
