"""Test videos generated from the sample photo with cv2.VideoWriter (nothing committed): faces cut
from t1.jpg pasted on a plain background, each visible during the time spans asked for."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from tests.support.images import sample_bgr

Span = tuple[float, float]  # seconds [start, end)


def face_crops(boxes: Sequence[Sequence[float]], margin: float = 0.35) -> list[np.ndarray]:
    """The sample photo's faces at these boxes, with a margin, as BGR images."""
    image = sample_bgr()
    height, width = image.shape[:2]
    crops = []
    for x1, y1, x2, y2 in boxes:
        mx, my = (x2 - x1) * margin, (y2 - y1) * margin
        crops.append(
            image[
                max(0, int(y1 - my)) : min(height, int(y2 + my)),
                max(0, int(x1 - mx)) : min(width, int(x2 + mx)),
            ]
        )
    return crops


def write_clip(
    path: Path,
    faces: Sequence[tuple[np.ndarray, Sequence[Span]]],
    *,
    seconds: float,
    fps: float = 10.0,
    size: tuple[int, int] = (480, 270),
    face_height: int = 130,
    background: int = 90,
) -> Path:
    """An mp4v clip: face `i` is drawn in its own column while the time is inside one of its spans."""
    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, size)
    assert writer.isOpened(), "OpenCV's FFmpeg cannot write mp4v here"
    scaled = [
        cv2.resize(crop, (int(crop.shape[1] * face_height / crop.shape[0]), face_height)) for crop, _ in faces
    ]
    column = width // max(1, len(faces))
    try:
        for number in range(round(seconds * fps)):
            timestamp = number / fps
            frame = np.full((height, width, 3), background, dtype=np.uint8)
            for slot, ((_, spans), crop) in enumerate(zip(faces, scaled, strict=True)):
                if any(start <= timestamp < end for start, end in spans):
                    x = slot * column + (column - crop.shape[1]) // 2 + (number % 3)  # a little motion
                    y = (height - crop.shape[0]) // 2
                    frame[y : y + crop.shape[0], x : x + crop.shape[1]] = crop  # columns fit the crops
            writer.write(frame)
    finally:
        writer.release()
    return path
