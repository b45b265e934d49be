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


# By the key's ending, not PurePosixPath's suffix: "photos/.jpg" is an image to S3 listings too,
# and a folder marker "a.jpg/" is not one.
def is_image_key(key: str) -> bool:
    return key.lower().endswith(IMAGE_SUFFIXES)


def is_video_key(key: str) -> bool:
    return key.lower().endswith(VIDEO_SUFFIXES)


def is_manifest_key(key: str) -> bool:
    return key.lower().endswith(MANIFEST_SUFFIXES)
