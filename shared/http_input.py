"""Input refused at the HTTP boundary, before any handler runs: the rules every service's app shares.

``InputGuard`` (ASGI middleware) refuses control characters in the path, NUL characters in the
query (raw or %00-encoded: no PostgreSQL text column takes them), a Content-Length that is not a
plain 64-bit number, and, for the JSON APIs (/api/v1), bodies beyond the JSON bounds of shared.bounded_json
(depth, integer size, NUL characters and lone surrogates in strings). Refusals are answered in the
protocol's shape (shared.http_guard.protocol_error: OCI error JSON below /v2, Quay's elsewhere).
Body reads are bounded in time by shared.http_guard.HttpGuard, which wraps this middleware.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass

import asyncpg
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.bounded_json import JsonBoundsError, loads_bounded
from shared.http_guard import protocol_error

logger = logging.getLogger(__name__)

JSON_API_PREFIX = "/api/v1/"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_CONTENT_LENGTH = re.compile(r"[0-9]{1,19}")
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class InputProblem:
    """A refusal; ``oci_code`` is its code on /v2 (the path of a /v2 request is a repository name
    and reference, hence NAME_INVALID for it)."""

    status: int
    message: str
    oci_code: str = "UNSUPPORTED"

    def response(self, scope: Scope) -> Response:
        return protocol_error(scope["path"], self.status, self.oci_code, self.message, {})


def request_line_problem(scope: Scope) -> InputProblem | None:
    """A control character in the path, NUL in the query, or a malformed Content-Length."""
    # No name, reference or id in a path holds a control character; NUL would reach PostgreSQL.
    if _CONTROL_CHARACTER.search(scope["path"]):
        return InputProblem(400, "the path must not contain control characters", "NAME_INVALID")
    query: bytes = scope.get("query_string", b"")
    if b"\x00" in query or b"%00" in query:
        return InputProblem(400, "query parameters must not contain NUL characters")
    length = Headers(scope=scope).get("content-length")
    if length is not None and not _CONTENT_LENGTH.fullmatch(length):
        return InputProblem(400, "Content-Length must be a decimal number of at most 19 digits")
    return None


def json_body_problem(body: bytes) -> InputProblem | None:
    """A body beyond the JSON bounds; None also for bodies that are not JSON (the endpoint answers those)."""
    try:
        loads_bounded(body, storable_text=True)
    except JsonBoundsError as error:
        return InputProblem(400, f"request body refused: {error}")
    except ValueError:
        return None
    return None


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A receive channel that hands the already read body over once, then the client's own messages."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class InputGuard:
    """ASGI middleware applying the module's rules; ``max_body_bytes`` bounds JSON API bodies (413)."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = request_line_problem(scope)
        if problem is None and scope["path"].startswith(JSON_API_PREFIX) and scope["method"] in _BODY_METHODS:
            body = await self._read_body(scope, receive)
            if isinstance(body, InputProblem):
                problem = body
            else:
                if body:
                    problem = await asyncio.to_thread(json_body_problem, body)
                receive = _replaying(body, receive)
        if problem is not None:
            await problem.response(scope)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | InputProblem:
        too_large = InputProblem(413, "Content Too Large")
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and int(declared) > self.max_body_bytes:
            return too_large
        received = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return InputProblem(400, "the client stopped sending the body")
            received += message.get("body", b"")
            if len(received) > self.max_body_bytes:
                return too_large
            if not message.get("more_body", False):
                return bytes(received)


async def database_input_handler(request: Request, error: Exception) -> Response:
    """Exception handler: PostgreSQL refused a value (asyncpg.DataError: NUL characters, numbers out
    of range, …), 400. The last line of defence behind the checks at the boundary, hence logged."""
    assert isinstance(error, asyncpg.DataError)
    logger.warning("input refused by PostgreSQL on %s %s: %s", request.method, request.url.path, error)
    return InputProblem(400, f"invalid input: {error}").response(request.scope)
