"""The app factory: `uvicorn --factory gpu_app.main:create_app` or `python -m gpu_app serve`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from gpu_app import __version__
from gpu_app.config import Settings
from gpu_app.engine import FaceEngine
from gpu_app.index import VectorIndex, VectorIndexError
from gpu_app.middleware import GuardPolicy, RequestGuard
from gpu_app.responses import AsciiJSONResponse, http_error, validation_error
from gpu_app.routers import faces, health, image_files, images, jobs, people, search, ui, verify, videos
from gpu_app.runtime import Runtime
from gpu_app.storage import ImageStorage, ObjectNotFoundError, StorageError

# Open to anyone: probes and the Prometheus scraper. Everything else needs the key, when one is set.
PROBE_PATHS = frozenset({"/health", "/ready", "/metrics"})
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
# Routes whose bodies are multipart uploads; every other body is small JSON.
UPLOAD_PATH, SEARCH_PATH, VERIFY_PATH = "/upload-images/", "/search", "/verify"


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
        videos.resume_after_restart(app)
        try:
            yield
        finally:
            runtime.stop()

    app = FastAPI(
        title="Face embedding service",
        version=__version__,
        description="InsightFace detection + recognition; images to storage, vectors to the index.",
        lifespan=lifespan,
        default_response_class=AsciiJSONResponse,
        exception_handlers={HTTPException: http_error, RequestValidationError: validation_error},
    )
    app.state.runtime = runtime
    limits = runtime.body_limits
    app.add_middleware(
        RequestGuard,
        policy=GuardPolicy(
            api_key=lambda: runtime.api_key,
            # The web page's own files carry no data; its API calls send the key (routers/ui.py).
            open_paths=PROBE_PATHS
            | ui.UI_PATHS
            | (DOCS_PATHS if runtime.settings.public_docs else frozenset()),
            default_body_limit=limits.json,
            # /verify carries at most two images, each within a search's cap.
            body_limits={
                UPLOAD_PATH: limits.upload,
                SEARCH_PATH: limits.search,
                VERIFY_PATH: 2 * limits.search,
            },
        ),
    )

    @app.exception_handler(ObjectNotFoundError)
    async def not_found(request: Request, exc: ObjectNotFoundError) -> AsciiJSONResponse:
        return AsciiJSONResponse({"detail": f"no object {exc}"}, status_code=404)

    @app.exception_handler(StorageError)
    async def storage_unavailable(request: Request, exc: StorageError) -> AsciiJSONResponse:
        return unavailable(f"storage unavailable, retry later: {exc}")

    @app.exception_handler(VectorIndexError)
    async def index_unavailable(request: Request, exc: VectorIndexError) -> AsciiJSONResponse:
        return unavailable(f"vector index unavailable, retry later: {exc}")

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

    routers = (health.public, health.protected, images.router, image_files.router, search.router)
    people_routers = (people.router, verify.router)
    for router in (*routers, faces.router, jobs.router, videos.router, *people_routers, ui.router):
        app.include_router(router)
    return app


def unavailable(detail: str) -> AsciiJSONResponse:
    """A dependency outage is the server's temporary state, not the request's fault: 503, retry."""
    return AsciiJSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "5"})
