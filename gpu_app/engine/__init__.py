"""Model engines. `load_engine(settings)` builds the configured one."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from gpu_app.engine.base import DetectedFace, EngineError, EngineInfo, FaceEngine

if TYPE_CHECKING:
    from gpu_app.config import Settings

__all__ = ["DetectedFace", "EngineError", "EngineInfo", "FaceEngine", "load_engine"]

log = logging.getLogger(__name__)


def load_engine(settings: Settings) -> FaceEngine:
    from gpu_app.engine.insightface_engine import InsightFaceEngine
    from gpu_app.engine.model_sync import ensure_model_pack

    ensure_model_pack(
        settings.model_root_path, settings.model_pack, settings.models_s3_uri, settings.aws_region
    )
    return InsightFaceEngine(
        model_root=settings.model_root_path,
        model_pack=settings.model_pack,
        det_size=settings.det_size,
        det_threshold=settings.det_threshold,
        provider_preference=settings.execution_provider,
        rec_batch_size=settings.rec_batch_size,
        intra_op_threads=settings.intra_op_threads,
    )
