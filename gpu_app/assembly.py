"""Builds the face service from `Settings`: the one place that loads the engine, opens the index and
wires storage, people and the pipeline's options together.

The server (runtime.py), the CLI (cli.py, people/cli.py) and the Batch jobs (batch/) all call it, so
they cannot drift apart; each passes in what it already holds (a test's loaded engine, the Batch
job's timed engine load) and gets the rest built as configured.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gpu_app.config import Settings

if TYPE_CHECKING:
    from gpu_app.engine import EngineInfo, FaceEngine
    from gpu_app.index import VectorIndex
    from gpu_app.metrics import Metrics
    from gpu_app.service import FaceService, ServiceOptions
    from gpu_app.storage import ImageStorage

PENDING_INDEX_FILE = "index-pending.json"


def service_options(settings: Settings, *, remember_pending: bool = True) -> ServiceOptions:
    """What `FaceService` reads of the settings. `remember_pending=False`: images waiting for an index
    retry are kept in memory only (a Batch job retries them itself, its disk dies with it)."""
    from gpu_app.service import ServiceOptions

    return ServiceOptions(
        upload_prefix=settings.s3_upload_path,
        max_upload_bytes=settings.max_upload_bytes,
        max_image_pixels=settings.max_image_pixels,
        min_image_side=settings.min_image_side,
        det_size=settings.det_size,
        working_image_pixels=settings.working_image_pixels,
        decode_budget_bytes=settings.decode_budget_bytes,
        match_threshold=settings.effective_match_threshold,
        face_thumbnails=settings.face_thumbnails,
        pending_index_file=settings.job_spool_dir / PENDING_INDEX_FILE if remember_pending else None,
    )


def gpu_problem(settings: Settings, info: EngineInfo) -> str | None:
    """Why the loaded models do not satisfy REQUIRE_GPU (None: they do, or it is not required).

    The server reports it as a reason not to be ready; a Batch job refuses to start with it."""
    if not settings.require_gpu or info.cuda:
        return None
    return (
        f"REQUIRE_GPU=true but the models run on {info.applied_providers}: check the CUDA/cuDNN "
        "pairing of onnxruntime-gpu, or set REQUIRE_GPU=false to accept CPU"
    )


def open_index(settings: Settings, info: EngineInfo, index: VectorIndex | None = None) -> VectorIndex:
    """The configured index (or `index`), opened for the engine's vectors. IndexMismatchError when
    it holds another model pack's or dimension's vectors."""
    from gpu_app.index import build_index

    index = index if index is not None else build_index(settings)
    index.open(info.embedding_dim, info.model_pack)
    return index


def build_service(
    settings: Settings,
    *,
    engine: FaceEngine | None = None,
    storage: ImageStorage | None = None,
    index: VectorIndex | None = None,
    metrics: Metrics | None = None,
    remember_pending: bool = True,
) -> FaceService:
    """The face service as configured; whatever the caller passes is used instead of being built.

    The caller closes it: `service.close()`, then `service.index.close()`."""
    from gpu_app.engine import load_engine
    from gpu_app.people.directory import build_people
    from gpu_app.service import FaceService
    from gpu_app.storage import build_storage

    engine = engine if engine is not None else load_engine(settings)
    storage = storage if storage is not None else build_storage(settings)
    index = open_index(settings, engine.info, index)
    return FaceService(
        engine,
        storage,
        index,
        build_people(settings, index, engine.info.model_pack),
        service_options(settings, remember_pending=remember_pending),
        metrics,
    )
