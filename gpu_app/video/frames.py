"""Decoding with OpenCV's VideoCapture (its wheel ships FFmpeg) and choosing the frames to analyse:
a fixed rate (default 2 per second) plus every scene cut."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Final, Literal

import cv2
import numpy as np

from contract.media import VIDEO_SUFFIXES

# A frame whose small grey thumbnail differs from the previous one by this mean absolute difference
# (0..1) starts a new shot; fades and camera pans stay well below it.
DEFAULT_SCENE_CUT: Final = 0.25
_THUMB: Final = (64, 36)


class VideoRejectedError(ValueError):
    """The video cannot be processed; `reason` says why (for the job result and notification)."""

    def __init__(self, reason: str, error_type: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error_type = error_type


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    fps: float
    frame_count: int
    width: int
    height: int

    @property
    def duration(self) -> float:
        return self.frame_count / self.fps if self.fps > 0 else 0.0


@dataclasses.dataclass(frozen=True)
class SampledFrame:
    index: int
    timestamp: float  # seconds
    image: np.ndarray  # BGR uint8
    reason: Literal["rate", "scene_cut"]


def probe(path: Path, max_seconds: float) -> VideoInfo:
    """The video's stream facts, or VideoRejectedError: empty, undecodable, or longer than allowed."""
    if path.stat().st_size == 0:
        raise VideoRejectedError("the video file is empty (0 bytes)", "EmptyVideo")
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise VideoRejectedError(
            f"{path.suffix or 'no extension'!r} is not a supported video type ({', '.join(VIDEO_SUFFIXES)})",
            "UnsupportedVideo",
        )
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise VideoRejectedError(
                "the video cannot be decoded (corrupt, truncated or unknown codec)", "CorruptVideo"
            )
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        info = VideoInfo(
            fps=fps,
            frame_count=int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0),
            width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH) or 0),
            height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0),
        )
        ok, _ = capture.read()
    finally:
        capture.release()
    if not ok or info.fps <= 0 or info.width <= 0:
        raise VideoRejectedError("the video has no decodable frame (corrupt or truncated)", "CorruptVideo")
    if info.duration > max_seconds:
        raise VideoRejectedError(
            f"the video lasts {info.duration:.0f} s, "
            f"more than the {max_seconds:.0f} s allowed (VIDEO_MAX_SECONDS)",
            "VideoTooLong",
        )
    return info


def _signature(image: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(cv2.resize(image, _THUMB, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
    return grey.astype(np.float32) / 255.0


def sample_frames(
    path: Path,
    *,
    rate: float,
    scene_cut: float = DEFAULT_SCENE_CUT,
    start: float = 0.0,
    end: float | None = None,
) -> Iterator[SampledFrame]:
    """Frames at `rate` per second and at every scene cut, with timestamps in [start, end).

    Decodes every frame (cuts are found between consecutive frames); `start` seeks first.
    """
    capture = cv2.VideoCapture(str(path))
    try:
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        if not capture.isOpened() or fps <= 0:
            raise VideoRejectedError("the video cannot be decoded", "CorruptVideo")
        index = round(start * fps)
        if index:
            capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        interval = 1.0 / rate
        next_sample = start
        previous: np.ndarray | None = None
        while True:
            timestamp = index / fps
            if end is not None and timestamp >= end:
                return
            ok, image = capture.read()
            if not ok:
                return
            signature = _signature(image)
            cut = previous is not None and float(np.abs(signature - previous).mean()) >= scene_cut
            previous = signature
            if timestamp + 1e-9 >= next_sample:
                yield SampledFrame(index, timestamp, image, "rate")
                next_sample += interval * max(1, int((timestamp - next_sample) / interval) + 1)
            elif cut:
                yield SampledFrame(index, timestamp, image, "scene_cut")
            index += 1
    finally:
        capture.release()


def decode_only(path: Path) -> int:
    """Frames decoded, nothing else: the floor a processing rate is compared with (make bench)."""
    capture = cv2.VideoCapture(str(path))
    count = 0
    try:
        while capture.read()[0]:
            count += 1
    finally:
        capture.release()
    return count
