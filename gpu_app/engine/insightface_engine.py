"""InsightFace (SCRFD detection + ArcFace-style recognition) on onnxruntime, CUDA when present.

`FaceAnalysis.get` runs the recogniser once per face; here detection runs per image and recognition
once per batch of aligned crops across all images of a call, which is what makes a GPU worth it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gpu_app.engine.alignment import norm_crops
from gpu_app.engine.base import (
    DetectedFace,
    EngineError,
    EngineInfo,
    ImageFaces,
    ImageRejectedError,
    detached,
    detector_view,
    each_alone,
    first_failure,
)
from gpu_app.engine.scrfd import LetterboxDetector

log = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def select_providers(preference: str, available: Sequence[str]) -> list[str]:
    """Providers to request: CUDA then CPU when CUDA is available (or demanded), else CPU."""
    if preference == "cpu":
        return [CPU]
    if CUDA in available:
        return [CUDA, CPU]
    if preference == "cuda":
        raise EngineError(
            "EXECUTION_PROVIDER=cuda but this onnxruntime has no CUDA provider "
            f"(available: {', '.join(available)}); install onnxruntime-gpu instead of onnxruntime"
        )
    return [CPU]


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


class InsightFaceEngine:
    """Loads a model pack once; `analyze` is thread-safe (one inference at a time per session)."""

    def __init__(
        self,
        *,
        model_root: Path,
        model_pack: str,
        det_size: int = 640,
        det_threshold: float = 0.5,
        provider_preference: str = "auto",
        rec_batch_size: int = 64,
        intra_op_threads: int = 0,
    ) -> None:
        import onnxruntime as ort
        from insightface.app import FaceAnalysis

        requested = select_providers(provider_preference, ort.get_available_providers())
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads or (os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Decoding overlaps inference on the same cores: onnxruntime's threads must yield, not spin.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # The CPU arena stays on: without it every call maps and faults in its activations afresh
        # (large buffers are mmapped alone, gpu_app.memory), 28% slower on CPU (BENCHMARKS.md, goal 3).
        try:
            analysis = FaceAnalysis(
                name=model_pack,
                root=str(model_root),
                providers=requested,
                sess_options=options,
                allowed_modules=["detection", "recognition"],
            )
            analysis.prepare(
                ctx_id=0 if CUDA in requested else -1,
                det_thresh=det_threshold,
                det_size=(det_size, det_size),
            )
        except (OSError, RuntimeError, AssertionError, ValueError) as exc:
            raise EngineError(
                f"could not load model pack {model_pack!r} from {model_root}/models/{model_pack}: {exc}. "
                "Set MODEL_ROOT and MODEL_PACK to an existing pack (offline), or allow the download."
            ) from exc
        if "recognition" not in analysis.models:
            raise EngineError(f"model pack {model_pack!r} has no recognition model")
        self._detector: Any = analysis.det_model
        self._letterbox = LetterboxDetector(self._detector)
        self._recognizer: Any = analysis.models["recognition"]
        self._batch_size = rec_batch_size
        self._lock = threading.Lock()
        dim = (
            int(self._recognizer.output_shape[-1])
            if isinstance(self._recognizer.output_shape[-1], int)
            else 0
        )
        if dim <= 0:  # dynamic output dimension: ask the model once
            probe = np.zeros((1, *self._recognizer.input_size[::-1], 3), dtype=np.uint8)
            dim = int(self._recognizer.get_feat([probe[0]]).shape[-1])
        self.info = EngineInfo(
            model_pack=model_pack,
            embedding_dim=dim,
            det_size=(det_size, det_size),
            requested_providers=requested,
            applied_providers={
                "detection": list(self._detector.session.get_providers()),
                "recognition": list(self._recognizer.session.get_providers()),
            },
        )
        log.info(
            "model pack %s loaded: dim=%d det_size=%d providers=%s",
            model_pack,
            dim,
            det_size,
            self.info.applied_providers,
        )
        self._warm_up()

    def _warm_up(self) -> None:
        """One detection and one recognition batch of the largest size, on blank pixels, before
        anyone is told the engine is ready: onnxruntime sizes its memory arena and picks its kernels
        on the first calls, so that memory is part of the ready process (a request's peak is then
        its own transients, issue 18 goal 3) and the first request does not pay for it."""
        side = self.info.det_size[0]
        self.detect(np.zeros((side, side, 3), dtype=np.uint8))
        crop = np.zeros((*self._recognizer.input_size[::-1], 3), dtype=np.uint8)
        self.embed_crops([crop] * self._batch_size)

    def check_shape(self, image: np.ndarray) -> None:
        """Refuse what SCRFD cannot letterbox: an image so elongated that its short side shrinks
        below one pixel makes OpenCV's resize assert (e.g. 16x10300 at det_size 640)."""
        height, width = image.shape[:2]
        if height < 1 or width < 1:
            raise ImageRejectedError(f"image is {width}x{height}: empty")
        det_size = self.info.det_size[0]
        view_width, view_height = detector_view(width, height, det_size)
        if min(view_width, view_height) < 1:
            raise ImageRejectedError(
                f"image is {width}x{height}: at det_size {det_size} the detector would see it as "
                f"{view_width}x{view_height} pixels; its aspect ratio must stay below {det_size}:1"
            )

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (N, 5: x1 y1 x2 y2 score) and landmarks (N, 5, 2) of one BGR image."""
        self.check_shape(image)
        with self._lock:
            boxes, landmarks = self._letterbox.detect(image)
        if landmarks is None:
            raise EngineError("the detector of this pack returns no landmarks; alignment needs them")
        return boxes, landmarks

    def embed_crops(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """L2-normalised embeddings of aligned crops, `rec_batch_size` crops per model call."""
        if not crops:
            return np.empty((0, self.info.embedding_dim), dtype=np.float32)
        parts = []
        with self._lock:
            for start in range(0, len(crops), self._batch_size):
                parts.append(self._recognizer.get_feat(list(crops[start : start + self._batch_size])))
        return l2_normalise(np.concatenate(parts, axis=0).astype(np.float32, copy=False))

    def align(self, image: np.ndarray, landmarks: np.ndarray) -> list[np.ndarray]:
        """The aligned crops of every face of the image (landmarks (n, 5, 2)), in face order."""
        return norm_crops(image, landmarks, self._recognizer.input_size[0])

    def analyze(self, images: Sequence[np.ndarray]) -> list[list[DetectedFace]]:
        return first_failure(self.analyze_each(images))

    def analyze_each(self, images: Sequence[np.ndarray]) -> list[ImageFaces]:
        """Detection and alignment per image (a failure stays with its image), then one recognition
        call over the crops of every image that got that far."""
        located: list[tuple[np.ndarray, np.ndarray, list[np.ndarray]] | Exception] = []
        for image in images:
            try:
                boxes, landmarks = self.detect(image)
                located.append((boxes, landmarks, self.align(image, landmarks)))
            except Exception as exc:
                located.append(detached(exc))
        good = [item for item in located if not isinstance(item, Exception)]
        embeddings_per_image = each_alone(self._embed_per_image, [crops for _, _, crops in good])
        embedded = iter(embeddings_per_image)
        results: list[ImageFaces] = []
        for item in located:
            if isinstance(item, Exception):
                results.append(item)
                continue
            boxes, landmarks, _ = item
            embeddings = next(embedded)
            if isinstance(embeddings, Exception):
                results.append(embeddings)
                continue
            results.append(
                [
                    DetectedFace(
                        bbox=tuple(float(v) for v in box[:4]),  # type: ignore[arg-type]
                        landmarks=tuple((float(x), float(y)) for x, y in points),
                        det_score=float(box[4]),
                        embedding=embeddings[i],
                    )
                    for i, (box, points) in enumerate(zip(boxes, landmarks, strict=True))
                ]
            )
        return results

    def _embed_per_image(self, crops_per_image: Sequence[list[np.ndarray]]) -> list[np.ndarray]:
        """One recognition call over every image's crops, split back per image."""
        if not crops_per_image:
            return []
        embeddings = self.embed_crops([crop for crops in crops_per_image for crop in crops])
        bounds = np.cumsum([len(crops) for crops in crops_per_image])[:-1]
        return list(np.split(embeddings, bounds))
