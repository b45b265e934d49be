"""Peak memory of a real app process for the largest requests the limits admit.

A memory bound, not a time bound: the peak resident set (VmHWM) of `python -m gpu_app serve` must stay
under 1.5 GB however many huge images one request carries, because decoded pixels are budgeted per
process (DECODE_BUDGET_BYTES) and huge images are downscaled while they decode.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from tests.support.images import encode, sample_image
from tests.support.live_app import App, app_env, run_app

PEAK_LIMIT_BYTES = 1_500_000_000
# What one request may add to an idle process: the decode budget (512 MiB) and inference's own memory.
GROWTH_LIMIT_BYTES = 800_000_000
SIDE = 6300  # 39.7 Mpx, just under MAX_IMAGE_PIXELS=40M


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


def with_text_chunk(png: bytes, text: str) -> bytes:
    """The same pixels under different bytes (a tEXt chunk after IHDR): a distinct image id."""
    data = b"Comment\0" + text.encode()
    chunk = struct.pack(">I", len(data)) + b"tEXt" + data + struct.pack(">I", zlib.crc32(b"tEXt" + data))
    header_end = 8 + 25  # signature + IHDR chunk
    return png[:header_end] + chunk + png[header_end:]


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    """A fresh process per test: VmHWM is a high-water mark, so each figure is the test's own."""
    with run_app(app_env(tmp_path), tmp_path / "app.log") as running:
        yield running


@pytest.fixture(scope="module")
def huge_png() -> bytes:
    canvas = Image.new("RGB", (SIDE, SIDE), (120, 130, 140))
    canvas.paste(sample_image().resize((400, 277)), (100, 100))
    return encode(canvas, "PNG")


def test_twenty_huge_pngs_in_one_request_stay_under_the_peak_limit(app: App, huge_png: bytes) -> None:
    idle = peak_rss(app.pid)
    files = [("files", (f"huge{i}.png", with_text_chunk(huge_png, str(i)))) for i in range(20)]
    response = requests.post(f"{app.url}/upload-images/", files=files, timeout=600)
    assert response.status_code == 200, response.text[:2000]
    results = response.json()["results"]
    assert all(r["width"] == SIDE and r["height"] == SIDE for r in results)
    peak = peak_rss(app.pid)
    print(f"peak RSS after 20 PNGs of {SIDE}x{SIDE}: {peak / 1e9:.2f} GB (idle {idle / 1e9:.2f} GB)")
    assert peak < PEAK_LIMIT_BYTES
    assert peak - idle < GROWTH_LIMIT_BYTES


def test_a_sixteen_bit_png_stays_under_the_peak_limit(app: App) -> None:
    idle = peak_rss(app.pid)
    gradient = (np.add.outer(np.arange(SIDE, dtype=np.uint32), np.arange(SIDE, dtype=np.uint32)) * 5).astype(
        np.uint16
    )
    data = encode(Image.fromarray(gradient), "PNG", compress_level=1)
    response = requests.post(f"{app.url}/upload-images/", files=[("files", ("deep.png", data))], timeout=600)
    assert response.status_code == 200, response.text[:2000]
    assert response.json()["results"][0]["width"] == SIDE
    peak = peak_rss(app.pid)
    print(f"peak RSS after a 16-bit PNG of {SIDE}x{SIDE}: {peak / 1e9:.2f} GB (idle {idle / 1e9:.2f} GB)")
    assert peak < PEAK_LIMIT_BYTES
    assert peak - idle < GROWTH_LIMIT_BYTES
