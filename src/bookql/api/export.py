"""``GET /export/training-data``: the training data as a streamed file, for a signed-in caller.

``format`` is ``jsonl`` (default), ``csv`` or ``parquet``; ``after`` resumes from a cursor
given by the ``trainingData`` subscription; ``batchSize`` sets the read (and Parquet row
group) size; ``spreadsheetSafe=true`` (CSV only) neutralises cells a spreadsheet would take
for formulas (OWASP), where the default keeps raw values. Errors are found before the first
byte is sent, and answer with a status and
the same ``errors[].extensions.code`` body as GraphQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from bookql.accounts.auth import RequestAuth
from bookql.accounts.service import Accounts
from bookql.api.errors import BadUserInput, BookQLError, ErrorCode, dependency_error
from bookql.api.slots import Kind, UserSlots
from bookql.api.view import error_response
from bookql.ml.export_files import FileFormat, stream_file
from bookql.ml.training_data import TrainingData, book_id_after

DEFAULT_BATCH_SIZE = 10_000
STATUS = {
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.BAD_USER_INPUT: 400,
    ErrorCode.SERVICE_UNAVAILABLE: 503,
    ErrorCode.TIMEOUT: 504,
}


class TrainingDataExport:
    def __init__(self, accounts: Accounts, data: TrainingData, slots: UserSlots) -> None:
        self.accounts = accounts
        self.data = data
        self.slots = slots  # the caller's export slot is held until the response is done

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with AsyncExitStack() as held:  # released however the response ends
            await self._serve(scope, receive, send, held)

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, held: AsyncExitStack
    ) -> None:
        request = Request(scope, receive)
        if request.method != "GET":
            response: Response = error_response(
                405, "use GET", ErrorCode.BAD_USER_INPUT, Allow="GET"
            )
        else:
            try:
                response = await self._respond(request, held)
            except Exception as raised:
                error = raised if isinstance(raised, BookQLError) else dependency_error(raised)
                if error is None:
                    raise
                response = error_response(STATUS.get(error.code, 400), error.message, error.code)
        await response(scope, receive, send)

    async def _respond(self, request: Request, held: AsyncExitStack) -> Response:
        auth = RequestAuth(self.accounts, lambda: request.headers.get("authorization"))
        viewer = await auth.require_user()
        await held.enter_async_context(self.slots.hold(Kind.EXPORT, viewer.user_id))
        params = request.query_params
        try:
            file_format = FileFormat(params.get("format", FileFormat.JSONL.value))
        except ValueError:
            choices = ", ".join(f.value for f in FileFormat)
            raise BadUserInput(f"`format` must be one of {choices}", field="format") from None
        after = book_id_after(params.get("after"))
        size = params.get("batchSize", str(DEFAULT_BATCH_SIZE))
        if not size.isdigit():
            raise BadUserInput("`batchSize` must be a whole number", field="batchSize")
        safe = params.get("spreadsheetSafe", "false").lower()
        if safe not in ("true", "false"):
            raise BadUserInput("`spreadsheetSafe` must be true or false", field="spreadsheetSafe")
        pieces = stream_file(
            self.data,
            file_format,
            after=after,
            batch_size=int(size),
            spreadsheet_safe=safe == "true",
        )
        try:  # a bad batch size or a full house fails here, not mid-file
            first = await anext(pieces)
        except StopAsyncIteration:  # nothing after `after`: an empty file
            first = (b"", 0)
        filename = f"training-data.{file_format.value}"
        return StreamingResponse(
            _body(first[0], pieces),
            media_type=file_format.media_type,
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )


async def _body(first: bytes, pieces: AsyncIterator[tuple[bytes, int]]) -> AsyncIterator[bytes]:
    yield first
    async for data, _rows in pieces:
        yield data
