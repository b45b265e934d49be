"""The model engine interface: images in, faces with L2-normalised embeddings out."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import numpy as np

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class EngineError(RuntimeError):
    """The model could not be loaded or run; the message says what to change."""


class ImageRejectedError(EngineError):
    """This image, by its own fault (e.g. its shape), cannot go through the model: a 4xx for its file."""


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

    def scaled(self, sx: float, sy: float) -> DetectedFace:
        """The same face in the pixels of an image `sx` x `sy` times larger (a downscaled decode's
        original); the embedding does not change."""
        if sx == 1.0 and sy == 1.0:
            return self
        x1, y1, x2, y2 = self.bbox
        return DetectedFace(
            bbox=(x1 * sx, y1 * sy, x2 * sx, y2 * sy),
            landmarks=tuple((x * sx, y * sy) for x, y in self.landmarks),
            det_score=self.det_score,
            embedding=self.embedding,
        )


# One image's outcome: its faces, or the exception that this image alone raised.
ImageFaces = list[DetectedFace] | Exception


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


def detector_view(width: int, height: int, det_size: int) -> tuple[int, int]:
    """Width and height of the image inside SCRFD's det_size x det_size letterbox: the longest side
    scaled to det_size, the other truncated to whole pixels (SCRFD's own arithmetic)."""
    ratio = height / width
    if ratio > 1.0:
        return int(det_size / ratio), det_size
    return det_size, int(det_size * ratio)


class FaceEngine(Protocol):
    info: EngineInfo

    def analyze(self, images: Sequence[np.ndarray]) -> list[list[DetectedFace]]:
        """Detect and embed the faces of each BGR uint8 image; one list of faces per image.
        Raises the first image's error if any image fails."""

    def analyze_each(self, images: Sequence[np.ndarray]) -> list[ImageFaces]:
        """Like `analyze`, but an image that fails leaves its exception in its own slot and the
        others still get their faces."""


def first_failure(results: Sequence[ImageFaces]) -> list[list[DetectedFace]]:
    """`analyze` from `analyze_each`: the faces of every image, or the first image's error."""
    for result in results:
        if isinstance(result, Exception):
            raise result
    return list(results)  # type: ignore[arg-type]


def each_alone(run: Callable[[Sequence[T]], list[R]], items: Sequence[T]) -> list[R | Exception]:
    """`run` over all items at once (one model call); if that raises, over each item alone, so only
    the item that fails carries the error, in its own slot."""
    try:
        return list(run(items))
    except Exception as exc:
        if len(items) == 1:
            return [detached(exc)]
        log.warning("a call over %d items failed (%s); running each alone", len(items), exc)
    results: list[R | Exception] = []
    for item in items:
        try:
            results.extend(run([item]))
        except Exception as exc:
            results.append(detached(exc))
    return results


def detached(exc: Exception) -> Exception:
    """The exception, logged, without tracebacks: a traceback keeps its frames, and with them every
    image of the call, alive as long as the exception is kept (in a result slot, until answered)."""
    if isinstance(exc, ImageRejectedError):
        log.info("image refused by the model: %s", exc)
    else:
        log.warning("image failed in the model: %s", exc, exc_info=exc)
    link: BaseException | None = exc
    for _ in range(16):  # the cause/context chain; bounded in case it loops
        if link is None:
            break
        link.__traceback__ = None
        link = link.__cause__ or link.__context__
    return exc
