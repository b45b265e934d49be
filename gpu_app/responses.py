"""The one JSON response class of the API: ASCII-escaped, so any text a client sent can be echoed.

A JSON body may carry a lone surrogate (`"\\ud800"` is valid JSON) that no UTF-8 encoder accepts;
echoed back in a per-file result or a validation error, it made the answer itself fail with 500.
Escaped (`\\ud800`), it round-trips to the client as it came.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse


class AsciiJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()


async def http_error(request: Request, exc: Exception) -> AsciiJSONResponse:
    assert isinstance(exc, HTTPException)
    return AsciiJSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def validation_error(request: Request, exc: Exception) -> AsciiJSONResponse:
    """422 with the documented ValidationProblem body: one issue per field."""
    assert isinstance(exc, RequestValidationError)
    issues = jsonable_encoder(exc.errors(), custom_encoder={bytes: lambda b: b.decode("utf-8", "replace")})
    return AsciiJSONResponse({"detail": issues}, status_code=422)
