"""``GET /export/training-data``: the training data as a streamed file, for a signed-in caller.

``format`` is ``jsonl`` (default), ``csv`` or ``parquet``; ``after`` resumes from a cursor
given by the ``trainingData`` subscription; ``batchSize`` sets the read (and Parquet row
group) size; ``spreadsheetSafe=true`` (CSV only) neutralises cells a spreadsheet would take
for formulas (OWASP), where the default keeps raw values. Errors are found before the first
byte is sent, and answer with a status and the same ``errors[].extensions.code`` body as
GraphQL. The caller's export slot (``BOOKQL_MAX_EXPORTS_PER_USER``) is held until the response
ends. A download acts as its caller is now: when their session ends (logout, password change,
deactivation) it stops at once and the connection is dropped, so the client sees an
incomplete body rather than a short file.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AsyncExitStack

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from bookql.accounts.auth import RequestAuth
from bookql.accounts.live import LiveSessions, SessionEnded, Stream
from bookql.accounts.service import Accounts
from bookql.core.errors import BadUserInput, BookQLError, ErrorCode
from bookql.graphql.errors import dependency_error
from bookql.graphql.slots import Kind, UserSlots
from bookql.ml.dataset import TrainingData, book_id_after
from bookql.ml.export_files import FileFormat, stream_file
from bookql.server.view import error_response

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
    def __init__(
        self,
        accounts: Accounts,
        data: TrainingData,
        slots: UserSlots,
        live: LiveSessions | None = None,
    ) -> None:
        self.accounts = accounts
        self.data = data
        self.slots = slots  # the caller's export slot is held until the response is done
        self.live = live

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
                response = error_response(
                    STATUS.get(error.code, 400),
                    error.message,
                    error.code,
                    extensions=error.extensions,
                )
        try:
            await response(scope, receive, send)
        except SessionEnded:  # mid-file: no end of body, so the client knows it is cut short
            return

    async def _respond(self, request: Request, held: AsyncExitStack) -> Response:
        auth = RequestAuth(self.accounts, lambda: request.headers.get("authorization"), self.live)
        auth.go_live()
        try:
            return await self._start(request, auth, held)
        except BaseException:
            auth.close()
            raise

    async def _start(self, request: Request, auth: RequestAuth, held: AsyncExitStack) -> Response:
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
        stream = auth.stream(subscription=False)
        try:  # a bad batch size or a full house fails here, not mid-file
            first = await _next(pieces, stream)
        except StopAsyncIteration:  # nothing after `after`: an empty file
            first = (b"", 0)
        filename = f"training-data.{file_format.value}"
        return StreamingResponse(
            _body(first[0], pieces, auth, stream),
            media_type=file_format.media_type,
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )


async def _next(
    pieces: AsyncIterator[tuple[bytes, int]], stream: Stream | None
) -> tuple[bytes, int]:
    piece: tuple[bytes, int] = await (stream.step(anext(pieces)) if stream else anext(pieces))
    return piece


async def _body(
    first: bytes,
    pieces: AsyncIterator[tuple[bytes, int]],
    auth: RequestAuth,
    stream: Stream | None,
) -> AsyncIterator[bytes]:
    try:
        yield first
        while True:
            try:
                data, _rows = await _next(pieces, stream)
            except StopAsyncIteration:
                return
            except BookQLError as ended:
                raise SessionEnded(ended.message) from None
            yield data
    finally:
        if isinstance(pieces, AsyncGenerator):  # an ended stream gives its snapshot back now
            await pieces.aclose()
        auth.close()
