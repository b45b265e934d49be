"""Liveness, readiness, metrics and the vector index check (no API key on /health, /ready, /metrics)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Response, Security, status
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gpu_app.deps import RuntimeDep, ServiceDep, api_key_header, require_api_key
from gpu_app.middleware import API_KEY_DETAIL, key_matches
from gpu_app.responses import AsciiJSONResponse
from gpu_app.schemas import (
    INVALID,
    NOT_READY,
    UNAUTHORIZED,
    HealthOut,
    IndexCheckOut,
    Limits,
    ModelOut,
    Problem,
    ReadyOut,
)
from gpu_app.service import FaceService

# A probe answers within this, whatever storage or the index do (S3's own timeouts are 30 s).
DEPENDENCY_CHECK_SECONDS = 3.0

public = APIRouter(tags=["health"])
protected = APIRouter(
    tags=["health"], dependencies=[Depends(require_api_key)], responses=UNAUTHORIZED | NOT_READY
)


@public.get(
    "/health",
    response_model=HealthOut,
    response_model_exclude_none=True,
    summary="Liveness from in-process state only (model, limits, idle time); never calls storage",
    responses=UNAUTHORIZED | INVALID,
)
async def health(
    runtime: RuntimeDep,
    verbose: Annotated[
        bool, Query(description="Also check storage and the index, with paths and names (API key)")
    ] = False,
    supplied_key: Annotated[str | None, Security(api_key_header)] = None,
) -> HealthOut:
    if verbose and runtime.api_key is not None and not key_matches(supplied_key, runtime.api_key):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, API_KEY_DETAIL, headers={"WWW-Authenticate": "APIKey"}
        )
    service = runtime.service
    reasons = runtime.not_ready_reasons(detailed=verbose)
    settings = runtime.settings
    body = HealthOut(
        status=runtime.state if runtime.state != "ready" else ("ok" if not reasons else "degraded"),
        ready=not reasons,
        reasons=reasons,
        idle_seconds=round(service.activity.idle_seconds, 3) if service else 0.0,
        jobs_in_progress=(runtime.jobs.in_progress if runtime.jobs else 0)
        + (service.activity.in_progress if service else 0),
        auto_shutdown_idle_time=settings.auto_shutdown_idle_time,
        index_pending=service.pending_index if service else 0,
        limits=Limits(
            max_files_per_request=settings.max_files_per_request,
            max_upload_bytes=settings.max_upload_bytes,
            max_request_bytes=runtime.body_limits.upload,
            max_image_pixels=settings.max_image_pixels,
        ),
        model=ModelOut(loaded=False, pack=settings.model_pack, error=runtime.error if verbose else None),
    )
    if service is not None:
        info = service.engine.info
        body.model = ModelOut(
            loaded=True,
            pack=info.model_pack,
            embedding_dim=info.embedding_dim,
            det_size=list(info.det_size),
            requested_providers=info.requested_providers,
            providers=info.applied_providers,
            cuda=info.cuda,
            match_threshold=settings.effective_match_threshold,
        )
        if verbose:
            body.storage, body.index = await dependency_checks(service)
    return body


async def dependency_checks(service: FaceService) -> tuple[dict[str, Any], dict[str, Any]]:
    """Storage and index checks, each bounded: a hung dependency reads as down, not as a hung probe."""

    async def bounded(check: Callable[[], dict[str, Any]], backend: str) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(run_in_threadpool(check), DEPENDENCY_CHECK_SECONDS)
        except TimeoutError:
            return {"ok": False, "backend": backend, "error": f"no answer in {DEPENDENCY_CHECK_SECONDS} s"}
        except Exception as exc:  # a probe reports a failing check, it never fails itself
            return {"ok": False, "backend": backend, "error": f"{type(exc).__name__}: {exc}"}

    def index_check() -> dict[str, Any]:
        result = service.index.health()
        return {"ok": result.ok, "backend": result.backend, "count": result.count} | result.detail

    storage, index = await asyncio.gather(
        bounded(service.storage.health, service.storage.backend), bounded(index_check, service.index.backend)
    )
    return storage, index


@public.get(
    "/ready",
    response_model=ReadyOut,
    summary="200 when the service accepts work (model loaded, storage and index answer), else 503",
    responses={503: {"model": ReadyOut, "description": "Not ready, with reasons"}},
)
async def ready(runtime: RuntimeDep) -> AsciiJSONResponse:
    reasons = runtime.not_ready_reasons(detailed=False)
    if not reasons and runtime.service is not None:
        storage, index = await dependency_checks(runtime.service)
        checks = {"storage": storage, "index": index}
        reasons += [f"{name} unavailable" for name, check in checks.items() if not check["ok"]]
    return AsciiJSONResponse(
        ReadyOut(ready=not reasons, reasons=reasons).model_dump(),
        status_code=status.HTTP_200_OK if not reasons else status.HTTP_503_SERVICE_UNAVAILABLE,
    )


@public.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}}},
)
async def metrics(runtime: RuntimeDep) -> Response:
    if runtime.jobs is not None:
        runtime.metrics.queue_depth.set(runtime.jobs.depth)
    return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@protected.get(
    "/test-es",
    summary="Vector index connectivity (the path's name predates the embedded index; kept for clients)",
    response_model=IndexCheckOut,
    responses={503: {"model": IndexCheckOut | Problem, "description": "Index down, or not ready"}},
)
async def test_index(service: ServiceDep) -> AsciiJSONResponse:
    result = await run_in_threadpool(service.index.health)
    body = IndexCheckOut(ok=result.ok, backend=result.backend, count=result.count, detail=result.detail)
    return AsciiJSONResponse(
        body.model_dump(mode="json"),
        status_code=status.HTTP_200_OK if result.ok else status.HTTP_503_SERVICE_UNAVAILABLE,
    )
