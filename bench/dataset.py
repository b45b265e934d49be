"""The deterministic benchmark image set, generated from the sample photos in the insightface wheel.

Kinds, in a fixed repeating pattern so the quick set (the first QUICK_COUNT images) has the same
mix as the full one:

- group: t1.jpg (6 faces) rescaled 0.4x-1.5x, sometimes mirrored, JPEG quality 40-95 or PNG;
- composite: 2-6 copies of t1 tiled into one larger image (up to 36 faces per image);
- portrait: the 112x112 Tom Hanks crop enlarged onto a textured background (one face);
- none: smooth noise with no face in it (detection runs, recognition does not);
- sample: t1.jpg byte for byte.

Images are written once under build/bench/dataset-v<version>-<count>/ (never committed) and read
back by every section, so all arms see exactly the same bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import shutil
import struct
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

from bench.core import BUILD, log

VERSION = 1
FULL_COUNT = 200
QUICK_COUNT = 40
SEED = 20_240_909
# 20 slots: 6 group, 5 composite, 5 portrait, 3 none, 1 sample.
PATTERN = (
    *("sample", "group", "portrait", "composite", "none"),
    *("group", "portrait", "composite", "group", "portrait"),
    *("composite", "none", "group", "portrait", "composite"),
    *("group", "none", "portrait", "composite", "group"),
)


@dataclass(frozen=True)
class BenchImage:
    name: str
    kind: str
    format: str  # JPEG | PNG
    width: int
    height: int
    data: bytes

    @property
    def content_type(self) -> str:
        return "image/png" if self.format == "PNG" else "image/jpeg"

    def tagged(self, tag: str) -> BenchImage:
        """The same pixels with different bytes (a new content id): a JPEG comment segment after
        SOI, or a PNG tEXt chunk before IEND. Both are valid files for any decoder."""
        text = f"bench {tag}".encode()
        if self.format == "PNG":
            end = self.data.rindex(b"IEND") - 4  # the IEND chunk starts with its length
            body = b"Comment\0" + text
            chunk = struct.pack(">I", len(body)) + b"tEXt" + body
            chunk += struct.pack(">I", zlib.crc32(b"tEXt" + body) & 0xFFFFFFFF)
            data = self.data[:end] + chunk + self.data[end:]
        else:
            data = self.data[:2] + b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text + self.data[2:]
        return replace(self, data=data)


@cache
def _sources() -> tuple[bytes, Image.Image, Image.Image]:
    import insightface

    folder = Path(insightface.__file__).parent / "data" / "images"
    t1_bytes = (folder / "t1.jpg").read_bytes()
    t1 = Image.open(io.BytesIO(t1_bytes)).convert("RGB")
    portrait = Image.open(folder / "Tom_Hanks_54745.png").convert("RGB")
    return t1_bytes, t1, portrait


def _encode(image: Image.Image, fmt: str, quality: int) -> bytes:
    buffer = io.BytesIO()
    if fmt == "PNG":
        image.save(buffer, format="PNG", compress_level=6)
    else:
        image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _background(width: int, height: int, rng: random.Random) -> Image.Image:
    """Smooth coloured noise: realistic enough for the detector, and certainly no face."""
    noise = np.random.default_rng(rng.randrange(2**32))
    small = noise.integers(0, 255, size=(6, 8, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)


def _group(rng: random.Random) -> tuple[Image.Image, str, int]:
    _, t1, _ = _sources()
    scale = rng.choice([0.4, 0.6, 0.8, 1.0, 1.0, 1.25, 1.5])
    image = t1.resize((round(t1.width * scale), round(t1.height * scale)), Image.Resampling.LANCZOS)
    if rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    # PNG only for the smaller ones: a 1920px PNG is 5 MB, not what people upload.
    fmt = "PNG" if scale <= 0.6 and rng.random() < 0.4 else "JPEG"
    return image, fmt, rng.choice([40, 60, 75, 85, 95])


def _composite(rng: random.Random) -> tuple[Image.Image, str, int]:
    _, t1, _ = _sources()
    rows, cols = rng.choice([(1, 2), (2, 1), (2, 2), (1, 3), (2, 3)])
    tile_width = rng.choice([640, 800, 960])
    tile_height = round(t1.height * tile_width / t1.width)
    tile = t1.resize((tile_width, tile_height), Image.Resampling.LANCZOS)
    mirrored = tile.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    canvas = Image.new("RGB", (cols * tile_width, rows * tile_height))
    for r in range(rows):
        for c in range(cols):
            canvas.paste(mirrored if (r + c) % 2 else tile, (c * tile_width, r * tile_height))
    return canvas, "JPEG", rng.choice([75, 85, 95])


def _portrait(rng: random.Random) -> tuple[Image.Image, str, int]:
    _, _, face = _sources()
    width, height = rng.choice([(360, 480), (480, 640), (640, 480), (800, 600), (1024, 768)])
    side = min(rng.choice([160, 224, 288]), min(width, height) - 20)
    canvas = _background(width, height, rng)
    canvas.paste(
        face.resize((side, side), Image.Resampling.LANCZOS),
        (rng.randrange(0, width - side), rng.randrange(0, height - side)),
    )
    if rng.random() < 0.5:
        canvas = canvas.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return canvas, "PNG" if rng.random() < 0.3 else "JPEG", rng.choice([50, 75, 90])


def _none(rng: random.Random) -> tuple[Image.Image, str, int]:
    width, height = rng.choice([(320, 240), (640, 480), (1024, 768), (1600, 1200)])
    return _background(width, height, rng), "PNG" if rng.random() < 0.25 else "JPEG", 85


def generate(count: int) -> Iterator[BenchImage]:
    """The first `count` images of the one deterministic sequence (so quick is a prefix of full)."""
    builders = {"group": _group, "composite": _composite, "portrait": _portrait, "none": _none}
    for i in range(count):
        kind = PATTERN[i % len(PATTERN)]
        rng = random.Random(f"{SEED}-{i}")  # one stream per image: a prefix is stable
        if kind == "sample":
            data, fmt = _sources()[0], "JPEG"
            width, height = _sources()[1].size
        else:
            image, fmt, quality = builders[kind](rng)
            data, (width, height) = _encode(image, fmt, quality), image.size
        suffix = ".png" if fmt == "PNG" else ".jpg"
        yield BenchImage(f"{i:04d}-{kind}{suffix}", kind, fmt, width, height, data)


def dataset_dir(count: int) -> Path:
    return BUILD / f"dataset-v{VERSION}-{count}"


def load(quick: bool) -> list[BenchImage]:
    """The image set, generated on first use and read back from build/bench afterwards."""
    count = QUICK_COUNT if quick else FULL_COUNT
    folder = dataset_dir(count)
    manifest = folder / "manifest.json"
    if manifest.exists():
        entries = json.loads(manifest.read_text())
        images = []
        for entry in entries:
            data = (folder / entry["name"]).read_bytes()
            if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                break  # tampered or truncated: regenerate below
            images.append(BenchImage(**{k: v for k, v in entry.items() if k != "sha256"}, data=data))
        else:
            return images
    log(f"generating {count} benchmark images into {folder}")
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    images = list(generate(count))
    entries = []
    for image in images:
        (tmp / image.name).write_bytes(image.data)
        meta = {k: v for k, v in asdict(image).items() if k != "data"}
        entries.append(meta | {"sha256": hashlib.sha256(image.data).hexdigest()})
    (tmp / "manifest.json").write_text(json.dumps(entries, indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return images


def describe(images: list[BenchImage]) -> str:
    kinds: dict[str, int] = {}
    for image in images:
        kinds[image.kind] = kinds.get(image.kind, 0) + 1
    megapixels = sum(i.width * i.height for i in images) / 1e6
    size = sum(len(i.data) for i in images) / 1e6
    mix = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    pngs = sum(i.format == "PNG" for i in images)
    return f"{len(images)} images ({mix}; {pngs} PNG), {megapixels:.1f} Mpx, {size:.1f} MB encoded"
