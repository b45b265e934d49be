"""The models the arms run: the seed's naive FaceAnalysis, and the bare onnxruntime sessions of the floor.

Both load the same pack files (MODEL_ROOT/MODEL_PACK). The floor's sessions are built the way the
project's engine builds its own (FaceAnalysis with the engine's SessionOptions), but the floor
itself only ever calls `session.run` on inputs prepared beforehand.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

CPU = ["CPUExecutionProvider"]

# scikit-image 0.26 deprecates the call insightface's norm_crop makes; the warning is noise here.
warnings.filterwarnings("ignore", message="`estimate` is deprecated", category=FutureWarning)


def floor_session_options() -> Any:
    """What the engine used when the suite was written: every core for one call, one inter-op thread.

    Fixed on purpose, so the floor means the same thing before and after the pipeline changes.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


def load_naive(root: Path, pack: str, det_size: int = 640) -> Any:
    """The seed's baseline exactly: stock FaceAnalysis, default session options, CPU."""
    from insightface.app import FaceAnalysis

    app = FaceAnalysis(name=pack, root=str(root), providers=CPU, allowed_modules=["detection", "recognition"])
    app.prepare(ctx_id=-1, det_size=(det_size, det_size))
    return app


def naive_get(app: Any, data: bytes) -> int:
    """One image the seed's way: cv2 decode, then FaceAnalysis.get (one recognition call per face)."""
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    return len(app.get(image))


@dataclass
class Floor:
    """Detection and recognition sessions, and the preprocessing the floor leaves out of its timing."""

    analysis: Any
    det_size: int

    @classmethod
    def load(cls, root: Path, pack: str, det_size: int = 640, providers: list[str] | None = None) -> Floor:
        from insightface.app import FaceAnalysis

        analysis = FaceAnalysis(
            name=pack,
            root=str(root),
            providers=providers or CPU,
            sess_options=floor_session_options(),
            allowed_modules=["detection", "recognition"],
        )
        analysis.prepare(ctx_id=0 if providers and providers != CPU else -1, det_size=(det_size, det_size))
        return cls(analysis, det_size)

    @property
    def detector(self) -> Any:
        return self.analysis.det_model

    @property
    def recognizer(self) -> Any:
        return self.analysis.models["recognition"]

    @property
    def det_session(self) -> Any:
        # SCRFD keeps one static-shape session per input size; this is the one detection runs.
        return self.detector._session_for_input_size((self.det_size, self.det_size))

    def det_blob(self, image: np.ndarray) -> np.ndarray:
        """The letterboxed NCHW float blob SCRFD feeds its session (resize + pad + normalise)."""
        size = self.det_size
        height, width = image.shape[:2]
        if height / width > 1.0:
            new_height, new_width = size, int(size * width / height)
        else:
            new_width, new_height = size, int(size * height / width)
        canvas = np.zeros((size, size, 3), dtype=np.uint8)
        canvas[:new_height, :new_width] = cv2.resize(image, (new_width, new_height))
        return self.detector._prepare_input_blob(canvas, (size, size))

    def run_det(self, blob: np.ndarray) -> None:
        self.det_session.run(self.detector.output_names, {self.detector.input_name: blob})

    def faces(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Boxes and landmarks (the full detector, with pre- and post-processing)."""
        boxes, landmarks = self.detector.detect(image)
        return boxes, landmarks

    def align(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        from insightface.utils import face_align

        return face_align.norm_crop(image, landmark=landmarks, image_size=self.recognizer.input_size[0])

    def rec_blob(self, crops: list[np.ndarray]) -> np.ndarray:
        """The NCHW float blob ArcFaceONNX.get_feat builds from aligned crops."""
        rec = self.recognizer
        blob = cv2.dnn.blobFromImages(
            crops, 1.0 / rec.input_std, rec.input_size, (rec.input_mean,) * 3, swapRB=True
        )
        return np.ascontiguousarray(blob, dtype=np.float32)

    def run_rec(self, blob: np.ndarray) -> np.ndarray:
        rec = self.recognizer
        return rec.session.run(rec.output_names, {rec.input_name: blob})[0]

    def get_feat(self, crops: list[np.ndarray]) -> np.ndarray:
        """Recognition as insightface calls it: blob building included."""
        return self.recognizer.get_feat(crops)


def decode_bgr(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("a benchmark image does not decode")
    return image
