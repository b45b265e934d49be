"""A labelled face set from the images available here, for people clustering and verification.

Identities: the six people of the insightface wheel's t1.jpg and the Tom Hanks portrait (seven
people, one label each; the wheel's mask_*.jpg images are left out: nothing says whether they show
one person or several, and two people must never share a label). Each identity gets varied
augmentations of its face crop (flip, rotation, scale, light, blur, grey, JPEG quality) pasted on a
plain canvas, each its own single-face image.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from PIL import Image, ImageEnhance, ImageFilter, ImageOps

BBox = tuple[float, float, float, float]
CANVAS = 320


@dataclass(frozen=True, slots=True)
class LabelledImage:
    label: str  # identity
    variant: str
    jpeg: bytes


@cache
def _images_dir() -> Path:
    import insightface

    return Path(insightface.__file__).parent / "data" / "images"


def identity_crops(detect: Callable[[bytes], Sequence[BBox]]) -> dict[str, Image.Image]:
    """Face crops (with context) of every identity, found by `detect` (boxes of one image)."""
    crops: dict[str, Image.Image] = {}
    data = (_images_dir() / "t1.jpg").read_bytes()
    image = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    for i, (x1, y1, x2, y2) in enumerate(sorted(detect(data), key=lambda b: b[0])):  # left to right
        side = max(x2 - x1, y2 - y1) * 1.8
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        crops[f"t1-{i}"] = image.crop(
            (int(cx - side / 2), int(cy - side / 2), int(cx + side / 2), int(cy + side / 2))
        )
    # The portrait is an aligned 112x112 face, too tight for the detector: given a margin instead.
    hanks = Image.open(_images_dir() / "Tom_Hanks_54745.png").convert("RGB")
    framed = Image.new("RGB", (200, 200), (128, 128, 128))
    framed.paste(hanks, (44, 44))
    crops["hanks"] = framed
    return crops


def _augment(crop: Image.Image, rng: random.Random, variant: int) -> tuple[str, Image.Image]:
    face = crop.resize((200, 200), Image.Resampling.LANCZOS)
    steps: list[str] = []
    if variant % 2:
        face = ImageOps.mirror(face)
        steps.append("flip")
    angle = rng.uniform(-12, 12)
    face = face.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=(128, 128, 128))
    steps.append(f"rot{angle:+.0f}")
    light = rng.uniform(0.6, 1.4)
    face = ImageEnhance.Brightness(face).enhance(light)
    steps.append(f"light{light:.2f}")
    if variant % 3 == 1:
        face = face.filter(ImageFilter.GaussianBlur(rng.uniform(0.8, 1.6)))
        steps.append("blur")
    if variant % 4 == 3:
        face = ImageOps.grayscale(face).convert("RGB")
        steps.append("grey")
    size = rng.randint(130, 220)
    face = face.resize((size, size), Image.Resampling.BILINEAR)
    canvas = Image.new("RGB", (CANVAS, CANVAS), tuple(rng.randint(60, 200) for _ in range(3)))
    canvas.paste(face, (rng.randint(0, CANVAS - size), rng.randint(0, CANVAS - size)))
    return "+".join(steps), canvas


def labelled_images(
    detect: Callable[[bytes], Sequence[BBox]], variants: int = 6, seed: int = 16
) -> list[LabelledImage]:
    """`variants` augmented single-face images per identity, identities interleaved (arrival order
    of a photo library, not one person after another)."""
    rng = random.Random(seed)
    crops = identity_crops(detect)
    out: list[LabelledImage] = []
    for variant in range(variants):
        for label, crop in crops.items():
            name, image = _augment(crop, rng, variant)
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=rng.choice((60, 75, 90)))
            out.append(LabelledImage(label, f"{variant}:{name}", buffer.getvalue()))
    return out
