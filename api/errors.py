"""Error bodies, their handlers and the request body limit.

Two shapes, both in the OpenAPI document:

- 422: FastAPI's ``HTTPValidationError``, ``{"detail": [{"loc", "msg", "type"}]}``, for
  schema violations and for the core's input errors (:class:`catalog.text.InputError`,
  which carry the location of the field they are about);
- every other error: :class:`ErrorMessage`, ``{"detail": "what went wrong"}``.

Nothing a caller sent is echoed at length: a validation error keeps at most
``ECHO_MAX`` characters of the input it refused, any other message at most ``MESSAGE_MAX``
(a 60,000-character dataset name in a path comes back cut), and strings are made encodable
(an unpaired surrogate would make the error response itself fail), numbers valid JSON
(``NaN``, ``Infinity`` and ``1e400`` parse in Python but cannot be sent back as numbers).
"""

from __future__ import annotations

import json
import math
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from catalog.text import InputError

ECHO_MAX = 100
MESSAGE_MAX = 500


class ErrorMessage(BaseModel):
    """An error other than a validation error: what went wrong, in one sentence."""

    detail: str


def safe_text(value: str, limit: int | None = None) -> str:
    """``value`` made UTF-8 encodable (unpaired surrogates as ``\\udXXX``), cut to ``limit``."""
    if limit is not None and len(value) > limit:
        value = value[:limit] + "…"
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def _safe_loc(loc: Any) -> list[str | int]:
    return [part if isinstance(part, int) else safe_text(str(part), ECHO_MAX) for part in loc]


def _safe_input(value: Any) -> Any:
    """The refused input if it is short; a scalar's first ``ECHO_MAX`` characters; nothing
    for a large structure (it could be megabytes)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return safe_text(value, ECHO_MAX)
    try:
        rendered = json.dumps(value, ensure_ascii=False, default=str, allow_nan=False)
    except (TypeError, ValueError):
        return None
    if len(rendered) > ECHO_MAX:
        return None
    return json.loads(safe_text(rendered))


def validation_detail(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validation errors as documented (loc, msg, type), each input cut short; no ctx."""
    detail = []
    for error in errors:
        entry: dict[str, Any] = {
            "loc": _safe_loc(error.get("loc", ())),
            "msg": safe_text(str(error.get("msg", "")), 500),
            "type": safe_text(str(error.get("type", "value_error")), ECHO_MAX),
        }
        if "input" in error:
            shown = _safe_input(error["input"])
            if shown is not None:
                entry["input"] = shown
        detail.append(entry)
    return detail


async def request_validation_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": validation_detail(list(exc.errors()))}, status_code=422)


def input_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    """A core input error (RequestError, IdentityError, VerificationError) as a 422 in the
    documented shape, located at the field it names (``["body"]`` when it names none)."""
    loc = getattr(exc, "loc", ("body",))
    message = safe_text(str(exc), MESSAGE_MAX)
    body = {"detail": [{"loc": _safe_loc(loc), "msg": message, "type": "value_error"}]}
    return JSONResponse(body, status_code=422)


def message_handler(status: int):
    """A handler answering ``status`` with ``{"detail": str(exc)}``."""

    def handler(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": safe_text(str(exc), MESSAGE_MAX)}, status_code=status)

    return handler


async def http_exception_handler(_request: Request, exc: Exception) -> JSONResponse:
    """Starlette's handler, with a detail that is always encodable text."""
    assert isinstance(exc, HTTPException)
    from fastapi.exception_handlers import http_exception_handler as default

    if isinstance(exc.detail, str):
        exc.detail = safe_text(exc.detail, MESSAGE_MAX)
    return await default(_request, exc)  # type: ignore[return-value]


HANDLERS = {
    RequestValidationError: request_validation_handler,
    HTTPException: http_exception_handler,
    InputError: input_error_handler,
}


class BodyTooLarge(HTTPException):
    """The request body exceeds the limit (raised while the app reads it)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")


class BodyLimit:
    """Pure ASGI middleware bounding request bodies to ``max_bytes``: 413 at once for a
    larger Content-Length (the body is never read), and 413 as soon as a streamed body
    grows past the limit (the rest is not read)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            # Read outside FastAPI's body parsing (which answers 413 itself): answer here.
            if started:
                raise
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"detail": f"request body larger than {self.max_bytes} bytes"})
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body.encode()})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
