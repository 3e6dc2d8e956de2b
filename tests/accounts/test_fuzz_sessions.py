"""Fuzzing WebSocket sessions while an administrator changes their user (issue 15).

Hypothesis draws sequences of admin actions and the user's own (demote, promote, deactivate,
reactivate, change password, log out one session, sign in again) and, after each, runs an
operation on every socket opened before it and checks the same token over HTTP: each answer
must be the user as they are at that moment (their role, admin fields refused to a user), and
a socket whose session ended must be closed with 4403. ``BOOKQL_TEST_FUZZ_EXAMPLES`` scales
the run, as for ``test_fuzz``.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.accounts.test_accounts import PASSWORD
from tests.conftest import ScratchDatabase
from tests.support.sessions import Site, close_code, codes, run, site

pytestmark = pytest.mark.slow  # hypothesis sequences over sockets

DEFAULT_EXAMPLES = 20  # sequences per database, scaled as test_fuzz's 260 are
SCALE = int(os.environ.get("BOOKQL_TEST_FUZZ_EXAMPLES", 260)) / 260
EXAMPLES = max(1, round(DEFAULT_EXAMPLES * SCALE))
ACTIONS = ("demote", "promote", "deactivate", "reactivate", "password", "logout", "login")
ME = "{ me { role } }"
USERS = "{ users(first: 1) { totalCount } }"
CHANGE_PASSWORD = """mutation($c: String!, $n: String!) {
    changePassword(input: {currentPassword: $c, newPassword: $n}) {
        auth { accessToken refreshToken } } }"""


@dataclass
class Session:
    access: str
    refresh: str
    ws: Any
    alive: bool = True


class User:
    """The model: what the user is now, and their sessions with a socket each."""

    def __init__(self, s: Site, user_id: str, stack: ExitStack) -> None:
        self.s, self.id, self.stack = s, user_id, stack
        self.role, self.active, self.password = "USER", True, PASSWORD
        self.sessions: list[Session] = []

    def sign_in(self, access: str | None = None, refresh: str | None = None) -> None:
        if access is None or refresh is None:
            tokens = self.s.login("wanderer", self.password)
            access, refresh = tokens["accessToken"], tokens["refreshToken"]
        ws = self.stack.enter_context(self.s.socket(access))
        self.sessions.append(Session(access, refresh, ws))

    def alive(self) -> list[Session]:
        return [session for session in self.sessions if session.alive]

    def act(self, action: str) -> None:
        s = self.s
        if action in ("demote", "promote"):
            self.role = "USER" if action == "demote" else "ADMIN"
            s.set_role(self.id, self.role)
        elif action in ("deactivate", "reactivate"):
            self.active = action == "reactivate"
            s.set_active(self.id, self.active)
            if not self.active:  # its token version moved: every session ended
                self._end(self.sessions)
        elif action == "password" and self.alive():
            new = f"password {len(self.sessions)} {self.password}"[:60]
            body = s.data(
                CHANGE_PASSWORD, {"c": self.password, "n": new}, token=self.alive()[0].access
            )
            self.password = new
            self._end(self.sessions)
            auth = body["changePassword"]["auth"]
            self.sign_in(auth["accessToken"], auth["refreshToken"])
        elif action == "logout" and self.alive():
            session = self.alive()[0]
            s.logout(session.refresh)
            self._end([session])
        elif action == "login" and self.active and len(self.alive()) < 3:
            self.sign_in()

    def _end(self, sessions: list[Session]) -> None:
        for session in sessions:
            if session.alive:
                session.alive = False
                assert close_code(session.ws) == 4403

    def check(self) -> None:
        """Every live socket and its token answer as the user is now."""
        expected_users = ["FORBIDDEN"] if self.role == "USER" else []
        for session in self.sessions:
            if not session.alive:
                assert codes(self.s.gql(ME, token=session.access)) == ["UNAUTHENTICATED"]
                continue
            for me in (run(session.ws, ME), self.s.gql(ME, token=session.access)):
                assert me == {"data": {"me": {"role": self.role}}}
            for listed in (run(session.ws, USERS), self.s.gql(USERS, token=session.access)):
                assert codes(listed) == expected_users, listed

    def reset(self) -> None:
        """Back to an active user with one session, for the next sequence."""
        self.stack.close()
        if not self.active:
            self.s.set_active(self.id, True)
        if self.role != "USER":
            self.s.set_role(self.id, "USER")
        self.role, self.active, self.sessions = "USER", True, []
        self.sign_in()


def test_sessions_follow_admin_actions_mid_connection(empty_db: ScratchDatabase) -> None:
    with site(empty_db) as s, ExitStack() as stack:
        registered = s.register("wanderer")
        user = User(s, registered["user"]["id"], stack)

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=EXAMPLES <= DEFAULT_EXAMPLES,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=8))
        def sequence(actions: list[str]) -> None:
            user.reset()
            user.check()
            for action in actions:
                user.act(action)
                user.check()

        sequence()
