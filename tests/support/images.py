"""Test inputs: the real sample photo from the insightface wheel and images generated from it."""

from __future__ import annotations

import io
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image


@cache
def sample_path() -> Path:
    import insightface

    return Path(insightface.__file__).parent / "data" / "images" / "t1.jpg"


def sample_bytes() -> bytes:
    return sample_path().read_bytes()


def sample_image() -> Image.Image:
    return Image.open(sample_path()).convert("RGB")


def sample_bgr() -> np.ndarray:
    """The sample photo as OpenCV reads it (BGR)."""
    import cv2

    image = cv2.imread(str(sample_path()))
    assert image is not None, f"{sample_path()} does not decode"
    return image


def encode(image: Image.Image, fmt: str = "JPEG", **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def blank_jpeg(width: int = 320, height: int = 240, seed: int = 0) -> bytes:
    """A decodable image with no face in it (smooth noise)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, size=(8, 8, 3), dtype=np.uint8)
    return encode(Image.fromarray(small).resize((width, height), Image.Resampling.BILINEAR))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height but whose data is tiny (decompression-bomb probe)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


BoxMapping = Callable[[tuple[float, ...]], tuple[float, ...]]


def variants() -> dict[str, tuple[bytes, BoxMapping]]:
    """Copies of the sample with a function mapping an original box to the copy's coordinates."""
    image = sample_image()
    width, _ = image.size
    scale = 0.8
    scaled = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)

    def flip(box: tuple[float, ...]) -> tuple[float, ...]:
        x1, y1, x2, y2 = box
        return (width - x2, y1, width - x1, y2)

    def rescale(box: tuple[float, ...]) -> tuple[float, ...]:
        return tuple(v * scale for v in box)

    return {
        "hflip": (encode(image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), quality=95), flip),
        "rescaled": (encode(scaled, quality=95), rescale),
        "jpeg_q40": (encode(image, quality=40), lambda box: box),
    }


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
