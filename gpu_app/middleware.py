"""The API key and the body size limit, checked before any byte of a request body is read.

FastAPI parses a body before the route's dependencies run, so a key check in a dependency comes
after a 300 MB JSON body sits in memory. This pure ASGI middleware answers 401 from the headers
alone, and 413 from Content-Length or as soon as the streamed body passes its route's cap.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_KEY_HEADER = "X-API-Key"
API_KEY_DETAIL = f"missing or wrong {API_KEY_HEADER} header"


def key_matches(supplied: str | None, expected: str) -> bool:
    return supplied is not None and hmac.compare_digest(supplied.encode(), expected.encode())


class BodyTooLargeError(HTTPException):
    """Raised from `receive` once the streamed body passes the cap; FastAPI re-raises HTTPException
    from body parsing unchanged, so it becomes a JSON 413 like every other error."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body above the limit of {limit} bytes for this route")


@dataclass(frozen=True, slots=True)
class GuardPolicy:
    """What the guard enforces. `api_key` is read per request (None: no key configured)."""

    api_key: Callable[[], str | None]
    open_paths: Collection[str]
    default_body_limit: int
    body_limits: Mapping[str, int] = field(default_factory=dict)  # path -> larger (multipart) cap

    def body_limit(self, path: str) -> int:
        return self.body_limits.get(path, self.default_body_limit)


class RequestGuard:
    def __init__(self, app: ASGIApp, policy: GuardPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        headers = _headers(scope)
        expected = self.policy.api_key()
        if (
            expected is not None
            and path not in self.policy.open_paths
            and not key_matches(headers.get(API_KEY_HEADER.lower()), expected)
        ):
            await _answer(send, 401, API_KEY_DETAIL, {"www-authenticate": "APIKey"})
            return
        limit = self.policy.body_limit(path)
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _answer(send, 413, f"Content-Length {declared} above the limit of {limit} bytes")
            return

        received = 0
        started = False

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive_within_limit, tracking_send)
        except BodyTooLargeError as exc:  # read outside a route (no FastAPI handler on the way)
            if started:
                raise
            await _answer(send, 413, str(exc.detail))


def _headers(scope: Scope) -> dict[str, str]:
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}


async def _answer(send: Send, status: int, detail: str, extra: Mapping[str, str] | None = None) -> None:
    """The same `{"detail": ...}` JSON every HTTPException gets; the connection closes unread."""
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
