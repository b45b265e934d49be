"""Which object keys are images, videos and manifests: by suffix, in any case."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Final

# What the app decodes as a photo; a bulk embedding job lists a prefix by these.
IMAGE_SUFFIXES: Final = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
# What the app's POST /videos and the video Batch job accept (OpenCV/FFmpeg containers).
VIDEO_SUFFIXES: Final = (".mp4", ".mov", ".mkv", ".webm", ".avi")
# An uploaded manifest (see `contract.manifest`) starts a bulk embedding job.
MANIFEST_SUFFIXES: Final = (".jsonl",)


def suffix(key: str) -> str:
    """The key's suffix in lower case ('' when it has none): '.jpg' for 'a/B.JPG'."""
    return PurePosixPath(key).suffix.lower()


def is_image_key(key: str) -> bool:
    return suffix(key) in IMAGE_SUFFIXES


def is_video_key(key: str) -> bool:
    return suffix(key) in VIDEO_SUFFIXES


def is_manifest_key(key: str) -> bool:
    return suffix(key) in MANIFEST_SUFFIXES
