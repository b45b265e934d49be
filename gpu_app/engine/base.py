"""The model engine interface: images in, faces with L2-normalised embeddings out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


class EngineError(RuntimeError):
    """The model could not be loaded or run; the message says what to change."""


@dataclass(frozen=True, slots=True)
class DetectedFace:
    bbox: tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels of the oriented image
    landmarks: tuple[tuple[float, float], ...]  # 5 points: eyes, nose, mouth corners
    det_score: float
    embedding: np.ndarray  # float32 (dim,), L2-normalised

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = self.bbox
        return max(0.0, x2 - x1) * max(0.0, y2 - y1)


@dataclass(frozen=True, slots=True)
class EngineInfo:
    model_pack: str
    embedding_dim: int
    det_size: tuple[int, int]
    requested_providers: list[str]
    applied_providers: dict[str, list[str]] = field(default_factory=dict)  # per model task

    @property
    def cuda(self) -> bool:
        """True only when every model session really runs on CUDA (not a silent CPU fallback)."""
        return bool(self.applied_providers) and all(
            providers[:1] == ["CUDAExecutionProvider"] for providers in self.applied_providers.values()
        )


class FaceEngine(Protocol):
    info: EngineInfo

    def analyze(self, images: Sequence[np.ndarray]) -> list[list[DetectedFace]]:
        """Detect and embed the faces of each BGR uint8 image; one list of faces per image."""
