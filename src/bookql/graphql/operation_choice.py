"""Which operation of a document runs: the one ``operationName`` names, or the only one.

The GraphQL specification (GetOperation) makes a document of several operations without an
``operationName`` a request error; Strawberry would run the first. The check follows
validation, as the specification orders them, so an invalid document still reports why.
An ``operationName`` that names no operation is refused by Strawberry itself.
"""

from __future__ import annotations

from collections.abc import Iterator

from graphql import GraphQLError, OperationDefinitionNode
from strawberry.extensions import SchemaExtension

from bookql.core.errors import ErrorCode


class OneOperation(SchemaExtension):
    """Refuses (``BAD_USER_INPUT``) a document of several operations that names none."""

    def on_validate(self) -> Iterator[None]:
        yield
        context = self.execution_context
        document = context.graphql_document
        # Strawberry's ``operation_name`` falls back to the first operation's: read the request's
        named = context._provided_operation_name is not None
        if document is None or context.pre_execution_errors or named:
            return
        operations = sum(isinstance(d, OperationDefinitionNode) for d in document.definitions)
        if operations > 1:
            raise GraphQLError(
                f"the document holds {operations} operations: name the one to run "
                "in `operationName`",
                extensions={"code": ErrorCode.BAD_USER_INPUT.value},
            )
