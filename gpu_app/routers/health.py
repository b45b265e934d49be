"""Liveness, readiness, metrics and the vector index check (no API key on /health, /metrics)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gpu_app.deps import RuntimeDep, ServiceDep, require_api_key

public = APIRouter(tags=["health"])
protected = APIRouter(tags=["health"], dependencies=[Depends(require_api_key)])


@public.get("/health", summary="Liveness, model, providers, storage and index status, idle time")
async def health(runtime: RuntimeDep) -> dict[str, Any]:
    service = runtime.service
    reasons = runtime.not_ready_reasons()
    body: dict[str, Any] = {
        "status": runtime.state if runtime.state != "ready" else ("ok" if not reasons else "degraded"),
        "ready": not reasons,
        "reasons": reasons,
        "idle_seconds": round(service.activity.idle_seconds, 3) if service else 0.0,
        "jobs_in_progress": (runtime.jobs.in_progress if runtime.jobs else 0)
        + (service.activity.in_progress if service else 0),
        "auto_shutdown_idle_time": runtime.settings.auto_shutdown_idle_time,
    }
    if service is not None:
        info = service.engine.info
        index_health = await run_in_threadpool(service.index.health)
        body |= {
            "model": {
                "loaded": True,
                "pack": info.model_pack,
                "embedding_dim": info.embedding_dim,
                "det_size": list(info.det_size),
                "requested_providers": info.requested_providers,
                "providers": info.applied_providers,
                "cuda": info.cuda,
                "match_threshold": runtime.settings.effective_match_threshold,
            },
            "storage": await run_in_threadpool(service.storage.health),
            "index": {"ok": index_health.ok, "backend": index_health.backend, "count": index_health.count}
            | index_health.detail,
            "index_pending": service.pending_index,
        }
    else:
        body["model"] = {"loaded": False, "pack": runtime.settings.model_pack, "error": runtime.error}
    return body


@public.get("/ready", summary="200 when the service accepts work, 503 with reasons otherwise")
async def ready(runtime: RuntimeDep) -> JSONResponse:
    reasons = runtime.not_ready_reasons()
    return JSONResponse(
        {"ready": not reasons, "reasons": reasons},
        status_code=status.HTTP_200_OK if not reasons else status.HTTP_503_SERVICE_UNAVAILABLE,
    )


@public.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(runtime: RuntimeDep) -> Response:
    if runtime.jobs is not None:
        runtime.metrics.queue_depth.set(runtime.jobs.depth)
    return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@protected.get("/test-es", summary="Vector index connectivity (name kept from the seed)")
async def test_index(service: ServiceDep) -> JSONResponse:
    result = await run_in_threadpool(service.index.health)
    return JSONResponse(
        {"ok": result.ok, "backend": result.backend, "count": result.count, "detail": result.detail},
        status_code=status.HTTP_200_OK if result.ok else status.HTTP_503_SERVICE_UNAVAILABLE,
    )
