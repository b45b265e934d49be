"""SCRFD detection around insightface's model, without its per-call overhead.

insightface's `SCRFD.detect` builds its input with `cv2.dnn.blobFromImage` over a zero-padded
det_size x det_size copy (7-8 ms of a ~16 ms model call on 2 cores), and decodes a box and five
landmarks for every anchor before keeping the few above the threshold. Here the letterbox is
written straight into one reused float32 blob (the padding holds the value a black pixel
normalises to), and only anchors above the threshold are decoded. The arithmetic is the same
element by element, so boxes, scores and landmarks are identical (tests/gpu_app/test_engine.py).
Any detector this does not recognise goes through insightface's own `detect`.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np


class LetterboxDetector:
    """`detect(image)` of one SCRFD model at one input size; not thread-safe (the engine locks)."""

    def __init__(self, model: Any) -> None:
        self._model = model
        sizes = model._resolve_input_sizes(None)
        self._fast = len(sizes) == 1 and all(
            hasattr(model, name)
            for name in ("_feat_stride_fpn", "fmc", "batched", "use_kps", "_num_anchors", "input_mean")
        )
        self._input_width, self._input_height = (int(v) for v in sizes[0])
        self._blob = np.empty((1, 3, self._input_height, self._input_width), dtype=np.float32)
        self._scale = np.float32(1.0 / model.input_std)
        self._mean = float(model.input_mean)
        self._centers: dict[tuple[int, int, int], np.ndarray] = {}

    def detect(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Boxes (N, 5: x1 y1 x2 y2 score) and landmarks (N, 5, 2), in the image's pixels."""
        if not self._fast:
            return self._model.detect(image)
        model = self._model
        det_scale = self._letterbox(image)
        session = model._session_for_input_size((self._input_width, self._input_height))
        outputs = session.run(model.output_names, {model.input_name: self._blob})
        boxes, scores, points = self._decode(outputs, float(model.det_thresh))
        if not scores:
            empty_points = np.empty((0, 5, 2), dtype=np.float32) if model.use_kps else None
            return np.empty((0, 5), dtype=np.float32), empty_points
        score = np.vstack(scores)
        order = np.argsort(-score.ravel(), kind="stable")
        candidates = np.hstack((np.vstack(boxes) / det_scale, score)).astype(np.float32, copy=False)[order]
        landmarks = (np.vstack(points) / det_scale)[order] if model.use_kps else None
        keep = model.nms(candidates)
        return candidates[keep, :], None if landmarks is None else landmarks[keep, :, :]

    def _letterbox(self, image: np.ndarray) -> float:
        """The image resized into the top-left of the blob as SCRFD does it (RGB, (x - mean) / std),
        the rest the value of a black pixel; returns the scale from image to blob pixels."""
        height, width = image.shape[:2]
        if height / width > self._input_height / self._input_width:
            new_height = self._input_height
            new_width = int(new_height / (height / width))
        else:
            new_width = self._input_width
            new_height = int(new_width * (height / width))
        resized = cv2.resize(image, (new_width, new_height))
        blob = self._blob[0]
        for channel, plane in enumerate(reversed(cv2.split(resized))):  # BGR -> RGB
            view = blob[channel, :new_height, :new_width]
            np.subtract(plane, self._mean, out=view, dtype=np.float32)
            np.multiply(view, self._scale, out=view)
        padding = np.float32((0.0 - self._mean) * self._scale)
        blob[:, new_height:, :] = padding
        blob[:, :new_height, new_width:] = padding
        return new_height / height

    def _decode(
        self, outputs: list[np.ndarray], threshold: float
    ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
        """Boxes, scores and landmarks (blob pixels) of the anchors at or above the threshold."""
        model = self._model
        fmc = model.fmc
        boxes, scores, points = [], [], []

        def first(array: np.ndarray) -> np.ndarray:  # a batched model's outputs have a batch axis
            return array[0] if model.batched else array

        for level, stride in enumerate(model._feat_stride_fpn):
            level_scores = first(outputs[level])
            positive = np.where(level_scores >= threshold)[0]
            if positive.size == 0:
                continue
            centers = self._anchor_centers(stride)[positive]
            distances = first(outputs[level + fmc])[positive] * stride
            boxes.append(
                np.stack(
                    [
                        centers[:, 0] - distances[:, 0],
                        centers[:, 1] - distances[:, 1],
                        centers[:, 0] + distances[:, 2],
                        centers[:, 1] + distances[:, 3],
                    ],
                    axis=-1,
                )
            )
            scores.append(level_scores[positive])
            if model.use_kps:
                offsets = first(outputs[level + fmc * 2])[positive] * stride
                coords = [centers[:, i % 2] + offsets[:, i] for i in range(offsets.shape[1])]
                points.append(np.stack(coords, axis=-1).reshape((len(positive), -1, 2)))
        return boxes, scores, points

    def _anchor_centers(self, stride: int) -> np.ndarray:
        key = (self._input_height // stride, self._input_width // stride, stride)
        centers = self._centers.get(key)
        if centers is None:
            height, width, _ = key
            grid = np.stack(list(np.mgrid[:height, :width][::-1]), axis=-1).astype(np.float32)
            centers = (grid * stride).reshape((-1, 2))
            anchors = self._model._num_anchors
            if anchors > 1:
                centers = np.stack([centers] * anchors, axis=1).reshape((-1, 2))
            self._centers[key] = centers
        return centers
