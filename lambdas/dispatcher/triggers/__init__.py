"""The registry of triggers: a new trigger is one module beside these and one line below."""

from __future__ import annotations

from typing import Final

from lambdas.dispatcher.triggers.base import BaseTrigger, DispatchContext
from lambdas.dispatcher.triggers.batch_job import BatchJobTrigger
from lambdas.dispatcher.triggers.face_embedding import FaceEmbeddingTrigger
from lambdas.dispatcher.triggers.gpu_instance import GpuInstanceTrigger

TRIGGER_REGISTRY: Final[dict[str, type[BaseTrigger]]] = {
    BatchJobTrigger.trigger_type: BatchJobTrigger,
    GpuInstanceTrigger.trigger_type: GpuInstanceTrigger,
    FaceEmbeddingTrigger.trigger_type: FaceEmbeddingTrigger,
}

__all__ = ["TRIGGER_REGISTRY", "BaseTrigger", "DispatchContext"]
