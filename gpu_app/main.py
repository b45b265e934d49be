"""The app factory: `uvicorn --factory gpu_app.main:create_app` or `python -m gpu_app serve`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from gpu_app import __version__
from gpu_app.config import Settings
from gpu_app.engine import FaceEngine
from gpu_app.index import VectorIndex
from gpu_app.routers import faces, health, images, jobs, search
from gpu_app.runtime import Runtime
from gpu_app.storage import ImageStorage


def create_app(
    settings: Settings | None = None,
    *,
    engine: FaceEngine | None = None,
    storage: ImageStorage | None = None,
    index: VectorIndex | None = None,
    background_load: bool = True,
) -> FastAPI:
    """Build the app. Tests inject an already loaded engine (and storage/index) to share them."""
    runtime = Runtime(settings or Settings(), engine=engine, storage=storage, index=index)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime.start(background=background_load)
        try:
            yield
        finally:
            runtime.stop()

    app = FastAPI(
        title="Face embedding service",
        version=__version__,
        description="InsightFace detection + recognition; images to storage, vectors to the index.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime

    @app.middleware("http")
    async def record_metrics(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        runtime.metrics.latency.labels(request.method, route).observe(time.perf_counter() - started)
        runtime.metrics.requests.labels(request.method, route, str(response.status_code)).inc()
        return response

    for router in (health.public, health.protected, images.router, search.router, faces.router, jobs.router):
        app.include_router(router)
    return app
