"""The accounts' root fields: ``me``, ``users`` and the session and user mutations."""

from __future__ import annotations

import strawberry

from bookql.accounts.graphql.context import Info
from bookql.accounts.graphql.permissions import IsAdmin, IsAuthenticated
from bookql.accounts.graphql.types import (
    AuthPayload,
    ChangePasswordInput,
    ChangePasswordPayload,
    LoginInput,
    LogoutInput,
    LogoutPayload,
    RefreshInput,
    RegisterInput,
    SetUserActiveInput,
    SetUserRoleInput,
    User,
    UserConnection,
    UserEdge,
    UserPayload,
)
from bookql.accounts.tables import Role, users
from bookql.db.keyset import Ordering, SortColumn
from bookql.graphql.relay import (
    CursorArgument,
    PageArgument,
    PageRequest,
    count_rows,
    expect_global_id,
    load_page,
)

USER_ORDER = Ordering("users", (SortColumn(users.c.id),))
USER_COLUMNS = tuple(users.c)


def _user_key(global_id: str) -> int:
    key = expect_global_id(global_id, "User")
    return int(key) if key.isdigit() else -1


async def load_user_node(info: Info, key: str) -> User | None:
    """``node`` for users: administrators see everyone, a user sees only themself.

    Another user is null, exactly as a missing one (no read either way): no existence oracle.
    """
    viewer = await info.context.auth.require_user()
    if not key.isdigit():
        return None
    if not viewer.is_admin and viewer.user_id != int(key):
        return None
    row = await info.context.accounts.user_by_id(int(key))
    return User.from_row(row) if row is not None else None


def _client_address(info: Info) -> str | None:
    client = info.context.request.client
    return client.host if client is not None else None


@strawberry.type
class AccountsQuery:
    @strawberry.field(description="The signed-in user; null when anonymous.")
    async def me(self, info: Info) -> User | None:
        viewer = await info.context.auth.viewer()
        if viewer is None:
            return None
        row = await info.context.accounts.user_by_id(viewer.user_id)
        return User.from_row(row) if row is not None else None

    @strawberry.field(description="Every user, oldest first.", permission_classes=[IsAdmin])
    async def users(
        self,
        info: Info,
        first: PageArgument = None,
        after: CursorArgument = None,
        last: PageArgument = None,
        before: CursorArgument = None,
    ) -> UserConnection:
        page = PageRequest.from_args(first, after, last, before)
        engine = info.context.engine
        result = await load_page(engine, page, columns=USER_COLUMNS, where=[], ordering=USER_ORDER)
        total = await count_rows(engine, users)
        return UserConnection(
            edges=[
                UserEdge(cursor=cursor, node=User.from_row(row))
                for row, cursor in zip(result.rows, result.cursors, strict=True)
            ],
            page_info=result.page_info,
            total_count=total,
        )


@strawberry.type
class AccountsMutation:
    @strawberry.mutation(
        description="Create an account and sign in (unless registration is closed)."
    )
    async def register(self, info: Info, input: RegisterInput) -> AuthPayload:
        session = await info.context.accounts.register(input.username, input.password, input.email)
        return AuthPayload.from_session(session)

    @strawberry.mutation(description="Sign in with a username and password.")
    async def login(self, info: Info, input: LoginInput) -> AuthPayload:
        session = await info.context.accounts.login(
            input.username, input.password, _client_address(info)
        )
        return AuthPayload.from_session(session)

    @strawberry.mutation(description="Trade a refresh token for new tokens; the old one dies.")
    async def refresh(self, info: Info, input: RefreshInput) -> AuthPayload:
        return AuthPayload.from_session(await info.context.accounts.refresh(input.refresh_token))

    @strawberry.mutation(description="End the session the refresh token belongs to.")
    async def logout(self, info: Info, input: LogoutInput) -> LogoutPayload:
        await info.context.accounts.logout(input.refresh_token)
        return LogoutPayload(ok=True)

    @strawberry.mutation(
        description="Change your password; ends every other session.",
        permission_classes=[IsAuthenticated],
    )
    async def change_password(
        self, info: Info, input: ChangePasswordInput
    ) -> ChangePasswordPayload:
        viewer = await info.context.auth.require_user()
        session = await info.context.accounts.change_password(
            viewer, input.current_password, input.new_password
        )
        return ChangePasswordPayload(auth=AuthPayload.from_session(session))

    @strawberry.mutation(permission_classes=[IsAdmin])
    async def set_user_role(self, info: Info, input: SetUserRoleInput) -> UserPayload:
        row = await info.context.accounts.set_role(_user_key(input.user_id), Role(input.role))
        return UserPayload(user=User.from_row(row))

    @strawberry.mutation(
        description="Deactivating ends the user's sessions at once.",
        permission_classes=[IsAdmin],
    )
    async def set_user_active(self, info: Info, input: SetUserActiveInput) -> UserPayload:
        row = await info.context.accounts.set_active(_user_key(input.user_id), input.active)
        return UserPayload(user=User.from_row(row))
