"""Fuzzing the whole served schema: random operations of every kind must fail cleanly.

hypothesis-graphql draws queries, mutations and subscriptions (these over server-sent events)
over every root field of the schema the app serves, with random arguments and selections,
sent in turn as anonymous, a signed-in user and an administrator. Arguments mix real keys of
the database, well-formed new values and anything at all. Whatever comes back must be an
answer the contract allows: every error carries a code from the contract, and none is
``INTERNAL_SERVER_ERROR`` (the mask for something unexpected). Invalid documents (its
negative mode) must never run: no data, a parse, validation or input code, and 400 for a
client that asked for ``application/graphql-response+json``.

The normal suite sends a reproducible sample of 1,040 valid and 780 invalid operations per
database; ``BOOKQL_TEST_FUZZ_EXAMPLES=5000`` runs a longer, random one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from collections import Counter
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import hypothesis_graphql
import pandas as pd
import pytest
from graphql import (
    DocumentNode,
    FieldNode,
    FloatValueNode,
    GraphQLInputObjectType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    IntValueNode,
    NullValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    OperationType,
    StringValueNode,
    TypeInfo,
    TypeInfoVisitor,
    ValueNode,
    Visitor,
    get_named_type,
    parse,
    print_ast,
    visit,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bookql.core.errors import ErrorCode
from bookql.db.engine import create_async_db_engine
from bookql.ml.features import load_training_set
from bookql.ml.price_model import train_price_model
from bookql.ml.store import ModelStore
from bookql.server.schema import build_schema
from tests.accounts.test_accounts import register
from tests.conftest import ScratchDatabase
from tests.support.admin_session import AdminClient, admin_session, seed

pytestmark = pytest.mark.slow  # hypothesis over the whole schema

DEFAULT_EXAMPLES = 260  # per test below and database
EXAMPLES = int(os.environ.get("BOOKQL_TEST_FUZZ_EXAMPLES", DEFAULT_EXAMPLES))
# Mutations take twice as many: most drawn inputs are refused (an id of another type, a
# caller without the role), and enough must still get through to the resolvers.
SCALE = {"mutations": 2}


def examples(kind: str) -> int:
    return EXAMPLES * SCALE.get(kind, 1)


CONTRACT_CODES = {code.value for code in ErrorCode} - {ErrorCode.INTERNAL_SERVER_ERROR.value}
REFUSED_DOCUMENT_CODES = {
    ErrorCode.GRAPHQL_PARSE_FAILED.value,
    ErrorCode.GRAPHQL_VALIDATION_FAILED.value,
    ErrorCode.BAD_USER_INPUT.value,
    ErrorCode.QUERY_TOO_COMPLEX.value,
}
GRAPHQL_RESPONSE = "application/graphql-response+json"
# Random arguments mostly fail (that is the point); enough must pass to reach the resolvers'
# success paths too: this share of the root fields answers at least once.
MIN_REACHED = {"queries": 1 / 3, "mutations": 1 / 4, "subscriptions": 1 / 2}
IDENTITIES = ("anonymous", "user", "admin")
# Most mutations are administrators' (books, categories, users, models, crawls): they go as
# an administrator every other time, so that enough of them get past the permission check.
TURNS = {"mutations": ("anonymous", "admin", "user", "admin")}


def fuzz_settings(examples: int) -> Callable[[Any], Any]:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=EXAMPLES <= DEFAULT_EXAMPLES,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


class Tally:
    """What the fuzzing saw, printed at the end so a run shows it reached real answers."""

    def __init__(self, roots: list[str]) -> None:
        self.roots = roots
        self.sent = 0
        self.answered: Counter[str] = Counter()  # root fields answered with a value
        self.codes: Counter[str] = Counter()

    def report(self, backend: str, what: str) -> str:
        codes = ", ".join(f"{code} {count}" for code, count in self.codes.most_common())
        return (
            f"\nfuzz {what} on {backend}: {self.sent} operations; root fields answered: "
            f"{dict(self.answered.most_common())}; errors by code: {codes or 'none'}"
        )


@dataclass(frozen=True)
class Keys:
    """Real values of the database under test, so operations reach data, not only refusals."""

    ids: list[str]
    strings: list[str]


KEYS_QUERY = """{
  books(first: 30) { edges { cursor node { id upc title category { id slug name } } } }
  users { edges { cursor node { id username } } }
  models { id version }
}"""


async def load_keys(client: AdminClient) -> Keys:
    """The session's own users stay out of the pools: an operation that demoted or
    deactivated them would leave every later one refused."""
    for name in ("victim1", "victim2"):
        await register(client, name)
    data = await client.admin(KEYS_QUERY)
    books = [edge["node"] for edge in data["books"]["edges"]]
    users = [edge["node"] for edge in data["users"]["edges"]]
    users = [user for user in users if user["username"].startswith("victim")]
    cursors = [edge["cursor"] for edge in data["books"]["edges"] + data["users"]["edges"]]
    ids = [book["id"] for book in books] + [book["category"]["id"] for book in books]
    ids += [user["id"] for user in users] + [model["id"] for model in data["models"]]
    strings = [book["upc"] for book in books] + [book["category"]["slug"] for book in books]
    strings += [book["category"]["name"] for book in books] + cursors
    strings += [word for book in books for word in book["title"].split()[:2]]
    strings += [user["username"] for user in users] + [m["version"] for m in data["models"]]
    strings += ["https://books.toscrape.com/", "http://127.0.0.1:9/", "a@example.com", "GBP"]
    return Keys(ids=ids, strings=strings)


def value_strategies(keys: Keys) -> dict[str, st.SearchStrategy[ValueNode]]:
    """Arguments: real keys, well-formed new values, and anything at all.

    hypothesis-graphql consults these before its built-in scalars, so ``ID`` and ``String``
    hit real books, categories, users and models, and ``Int`` page sizes are mostly in range.
    """

    def strings(*choices: st.SearchStrategy[str]) -> st.SearchStrategy[ValueNode]:
        return st.one_of(*choices).map(lambda value: StringValueNode(value=value))

    # A fresh, well-formed word passes as a username, slug, name, title or password; an
    # address passes where an e-mail is asked for.
    word = st.from_regex(r"[a-z][a-z0-9-]{9,30}", fullmatch=True)
    email = st.from_regex(r"[a-z][a-z0-9.]{2,12}@[a-z]{3,10}\.(org|net)", fullmatch=True)
    anything = st.text(max_size=40)
    return {
        "ID": strings(st.sampled_from(keys.ids), anything),
        "String": strings(st.sampled_from(keys.strings), word, email, anything),
        "Int": st.one_of(
            st.integers(1, 100), st.integers(1, 100), st.integers(-(2**31), 2**31 - 1)
        ).map(lambda value: IntValueNode(value=str(value))),
        "Float": st.one_of(
            st.integers(0, 8000).map(lambda pence: pence / 100),
            st.floats(allow_nan=False, allow_infinity=False),
        ).map(lambda value: FloatValueNode(value=repr(value))),
    }


def train_model(database: ScratchDatabase) -> None:
    """An active model, so that predictions have something to answer with."""

    async def load() -> tuple[pd.DataFrame, list[str]]:
        engine = create_async_db_engine(database.settings())
        try:
            return await load_training_set(engine)
        finally:
            await engine.dispose()

    frame, categories = asyncio.run(load())
    trained = train_price_model(frame, categories)
    store = ModelStore(database.settings().effective_models_dir)
    store.activate(store.save(trained).version)


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]
    strict: bool  # asked for application/graphql-response+json: request errors are 400

    def codes(self) -> list[str]:
        return [error.get("extensions", {}).get("code") for error in self.body.get("errors", [])]


def token_for(client: AdminClient, identity: str) -> str | None:
    return {"anonymous": None, "user": client.user_token, "admin": client.admin_token}[identity]


async def post(client: AdminClient, document: str, identity: str, strict: bool) -> Reply:
    token = token_for(client, identity)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    headers["Accept"] = GRAPHQL_RESPONSE if strict else "application/json"
    if document.startswith("subscription"):
        return await stream(client, document, headers)
    response = await client.http.post("/graphql", json={"query": document}, headers=headers)
    assert response.headers["content-type"] == headers["Accept"], response.text
    return Reply(response.status_code, response.json(), strict)


async def stream(client: AdminClient, document: str, headers: dict[str, str]) -> Reply:
    """A subscription over server-sent events, read to its end: its errors, and its last
    data (a request refused before it ran is an ordinary JSON answer instead)."""
    headers = {**headers, "Accept": "text/event-stream"}
    response = await client.http.post(
        "/graphql", json={"query": document}, headers=headers, timeout=60
    )
    if response.headers["content-type"].startswith("application/json"):
        return Reply(response.status_code, response.json(), strict=False)
    assert response.headers["content-type"].startswith("text/event-stream"), response.text
    events = [
        json.loads(line.removeprefix("data:"))
        for line in response.text.splitlines()
        if line.startswith("data:") and line.removeprefix("data:").strip()
    ]
    body: dict[str, Any] = {"data": None}
    for event in events:
        body["errors"] = body.get("errors", []) + event.get("errors", [])
        body["data"] = event.get("data") or body["data"]
    if not body["errors"]:
        del body["errors"]
    return Reply(response.status_code, body, strict=False)


def root_fields(document: str) -> dict[str, str]:
    """Response keys of the operation's root fields, with the field each one names."""
    (operation,) = parse(document).definitions
    assert isinstance(operation, OperationDefinitionNode)
    return {
        (node.alias or node.name).value: node.name.value
        for node in operation.selection_set.selections
        if isinstance(node, FieldNode)
    }


def check_answer(reply: Reply, document: str, tally: Tally) -> None:
    """Data with errors only where a field failed, or a refused request; coded errors only."""
    context = f"{document}\n-> {reply}"
    tally.sent += 1
    codes = reply.codes()
    tally.codes.update(str(code) for code in codes)
    assert all(code in CONTRACT_CODES for code in codes), context
    assert all(error.get("message") for error in reply.body.get("errors", [])), context
    for error in reply.body.get("errors", []):
        if error["extensions"]["code"] == ErrorCode.RATE_LIMITED.value:
            assert error["extensions"]["retryAfter"] >= 1, context
    if reply.status == 400 and reply.strict:
        assert codes and "data" not in reply.body, context
        assert set(codes) <= REFUSED_DOCUMENT_CODES, context
        return
    assert reply.status == 200 and "data" in reply.body, context
    if not codes:
        assert reply.body["data"] is not None, context
    names = root_fields(document.partition(": ")[2])
    for key, value in (reply.body["data"] or {}).items():
        if value is not None:
            tally.answered[names[key]] += 1


def check_refusal(reply: Reply, document: str, tally: Tally) -> None:
    """An invalid document never runs: no data; 400 when the client asked for the strict
    media type; a parse, validation or input code."""
    context = f"{document}\n-> {reply}"
    tally.sent += 1
    codes = reply.codes()
    tally.codes.update(str(code) for code in codes)
    assert codes and set(codes) <= REFUSED_DOCUMENT_CODES, context
    if reply.strict:
        assert reply.status == 400 and "data" not in reply.body, context
    else:
        assert reply.status == 200 and reply.body.get("data") is None, context


def root_type(schema: GraphQLSchema, kind: str) -> GraphQLObjectType:
    root = {
        "queries": schema.query_type,
        "mutations": schema.mutation_type,
        "subscriptions": schema.subscription_type,
    }[kind]
    assert root is not None
    return root


def as_subscription(document: DocumentNode) -> DocumentNode:
    (operation,) = document.definitions
    assert isinstance(operation, OperationDefinitionNode)
    subscription = dataclasses.replace(operation, operation=OperationType.SUBSCRIPTION)
    return dataclasses.replace(document, definitions=(subscription,))


def documents(
    schema: GraphQLSchema,
    kind: str,
    scalars: dict[str, st.SearchStrategy[ValueNode]],
    mode: hypothesis_graphql.Mode = hypothesis_graphql.Mode.POSITIVE,
) -> st.SearchStrategy[str]:
    """Mostly one root field per operation (a failing non-null root field nulls all of
    ``data``, which would hide the others' answers), sometimes several at once."""
    if kind == "subscriptions":
        # hypothesis-graphql draws queries and mutations only: draw queries over a schema whose
        # query type is the subscription type, then make them subscriptions.
        over = GraphQLSchema(query=schema.subscription_type, types=list(schema.type_map.values()))
        subscriptions = documents(over, "queries", scalars, mode)
        return subscriptions.map(lambda text: print_ast(as_subscription(parse(text))))
    strategy = {"queries": hypothesis_graphql.queries, "mutations": hypothesis_graphql.mutations}

    def generate(fields: list[str] | None = None) -> st.SearchStrategy[DocumentNode]:
        return strategy[kind](  # yields what print_ast returns: the document itself
            schema, fields=fields, custom_scalars=scalars, mode=mode, print_ast=lambda node: node
        )

    def tidy(document: DocumentNode) -> DocumentNode:
        types = TypeInfo(schema)
        tidied: DocumentNode = visit(document, TypeInfoVisitor(types, TidyArguments(types)))
        return tidied

    if mode is hypothesis_graphql.Mode.NEGATIVE:  # a field may have nothing to violate
        return generate().map(print_ast)
    one_field = st.sampled_from(sorted(root_type(schema, kind).fields)).flatmap(
        lambda name: generate([name])
    )
    return st.tuples(st.one_of(one_field, one_field, generate()), st.booleans()).map(
        lambda drawn: print_ast(tidy(drawn[0]) if drawn[1] else drawn[0])
    )


class TidyArguments(Visitor):
    """Drops the arguments a real client would not combine (``first`` with ``last``, ``id``
    with ``upc``, two keys of a ``@oneOf`` input, which hypothesis-graphql does not know) or
    would not invent (an edit's ``version``), so that half the operations get past those
    refusals to the resolvers."""

    def __init__(self, types: TypeInfo) -> None:
        super().__init__()
        self.types = types

    def enter_object_value(self, node: ObjectValueNode, *_: Any) -> ObjectValueNode | None:
        input_type = get_named_type(self.types.get_input_type())
        if not isinstance(input_type, GraphQLInputObjectType):
            return None
        version = input_type.fields.get("version")
        if version is not None and not isinstance(version.type, GraphQLNonNull):
            # an edit's optional version: a client sends back the one it read, never a made-up
            # one (that is CONFLICT), so a tidy edit leaves it out
            kept = tuple(field for field in node.fields if field.name.value != "version")
            if len(kept) < len(node.fields):
                return dataclasses.replace(node, fields=kept)
        definition = input_type.extensions.get("strawberry-definition")  # where @oneOf lives
        if not getattr(definition, "is_one_of", False):
            return None
        given = [field for field in node.fields if not isinstance(field.value, NullValueNode)]
        return dataclasses.replace(node, fields=tuple(given[:1])) if given else None

    def enter_field(self, node: FieldNode, *_: Any) -> FieldNode | None:
        arguments = node.arguments or ()
        names = {argument.name.value for argument in arguments}
        dropped = (
            {"last", "before"} if "first" in names else {"after"} if "last" in names else set()
        )
        if "id" in names and names & {"upc", "slug"}:
            dropped |= {"upc", "slug"}
        if not names & dropped:
            return None
        kept = tuple(argument for argument in arguments if argument.name.value not in dropped)
        return dataclasses.replace(node, arguments=kept)


def run_fuzz(
    database: ScratchDatabase,
    kind: str,
    check: Callable[[Reply, str, Tally], None],
    mode: hypothesis_graphql.Mode = hypothesis_graphql.Mode.POSITIVE,
) -> Tally:
    """Sends ``examples(kind)`` generated documents through one app, each as a drawn
    identity."""
    with asyncio.Runner() as runner:
        runner.run(seed(database))
        train_model(database)
        stack = AsyncExitStack()
        client = runner.run(
            stack.enter_async_context(
                admin_session(database, seeded=False, run_jobs_in_server=False)
            )
        )
        try:
            schema = build_schema(database.settings())._schema
            tally = Tally(sorted(root_type(schema, kind).fields))
            scalars = value_strategies(runner.run(load_keys(client)))

            @fuzz_settings(examples(kind))
            @given(
                document=documents(schema, kind, scalars, mode),
                strict=st.booleans(),
            )
            def answers_cleanly(document: str, strict: bool) -> None:
                # In turn, not drawn: Hypothesis would favour the first identity.
                turns = TURNS.get(kind, IDENTITIES)
                identity = turns[tally.sent % len(turns)]
                reply = runner.run(post(client, document, identity, strict))
                check(reply, f"as {identity}: {document}", tally)

            answers_cleanly()
        finally:
            runner.run(stack.aclose())
    print(tally.report(database.backend, kind))
    return tally


@pytest.mark.parametrize("kind", ["queries", "mutations", "subscriptions"])
def test_random_operations_fail_only_with_contract_codes(
    empty_db: ScratchDatabase, kind: str
) -> None:
    tally = run_fuzz(empty_db, kind, check_answer)
    assert tally.sent >= min(EXAMPLES, DEFAULT_EXAMPLES) * SCALE.get(kind, 1) * 0.9
    reached = len(tally.answered) / len(tally.roots)
    assert reached >= MIN_REACHED[kind], f"only {sorted(tally.answered)} ever answered"
    assert sum(tally.codes.values()), "no operation failed: errors went untested"


@pytest.mark.parametrize("kind", ["queries", "mutations"])
def test_invalid_documents_are_refused_before_running(empty_db: ScratchDatabase, kind: str) -> None:
    tally = run_fuzz(empty_db, kind, check_refusal, hypothesis_graphql.Mode.NEGATIVE)
    assert tally.codes[ErrorCode.GRAPHQL_VALIDATION_FAILED.value] >= tally.sent // 2
