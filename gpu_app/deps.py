"""FastAPI dependencies: the runtime, a ready service, and the API key check."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader

from gpu_app.middleware import API_KEY_DETAIL, API_KEY_HEADER, key_matches
from gpu_app.runtime import Runtime
from gpu_app.service import FaceService

api_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def get_service(runtime: Annotated[Runtime, Depends(get_runtime)]) -> FaceService:
    reasons = runtime.not_ready_reasons()
    if reasons or runtime.service is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="; ".join(reasons) or "not ready",
            headers={"Retry-After": "5"},
        )
    return runtime.service


def require_api_key(
    runtime: Annotated[Runtime, Depends(get_runtime)],
    supplied: Annotated[str | None, Security(api_key_header)] = None,
) -> None:
    expected = runtime.api_key
    if expected is None:
        return
    # The RequestGuard middleware already refused a wrong key before the body was read; this
    # dependency documents the scheme in OpenAPI and guards any app mounted without the middleware.
    if not key_matches(supplied, expected):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail=API_KEY_DETAIL,
            headers={"WWW-Authenticate": "APIKey"},
        )


ServiceDep = Annotated[FaceService, Depends(get_service)]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
