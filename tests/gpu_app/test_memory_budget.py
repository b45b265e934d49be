"""Decoded pixels are budgeted per process, huge images decode reduced, 16-bit decodes without float64."""

from __future__ import annotations

import gc
import io
import threading
import tracemalloc
from collections.abc import Callable

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageOps

from gpu_app.imaging import ImageDecodeError, decode_image, reduction_factor
from gpu_app.memory import MemoryBudget
from tests.support.images import encode, iou, sample_bytes, sample_image

MIB = 1024 * 1024


def test_reservations_wait_for_room_and_arrays_give_it_back() -> None:
    budget = MemoryBudget(10 * MIB)
    held = budget.reserve(8 * MIB).keep_for(np.zeros(8 * MIB, dtype=np.uint8))
    assert budget.free == 2 * MIB
    taken: list[object] = []
    waiter = threading.Thread(target=lambda: taken.append(budget.reserve(4 * MIB)))
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive() and not taken  # no room until the array is gone
    del held
    waiter.join(10)
    assert taken and budget.free == 6 * MIB  # the waiter holds its 4 MiB now


def test_a_reservation_keeps_only_the_array_and_gives_back_the_rest() -> None:
    budget = MemoryBudget(100 * MIB)
    with budget.reserve(60 * MIB) as reservation:
        array = reservation.keep_for(np.zeros(10 * MIB, dtype=np.uint8))
    assert budget.free == 90 * MIB
    view = array[:MIB]
    del array
    assert budget.free == 90 * MIB  # a view keeps its base, and so its bytes, alive
    del view
    assert budget.free == 100 * MIB
    with pytest.raises(RuntimeError), budget.reserve(30 * MIB):
        raise RuntimeError("decode failed")
    assert budget.free == 100 * MIB  # a failed decode gives everything back


def test_more_than_the_budget_waits_for_all_of_it_rather_than_forever() -> None:
    budget = MemoryBudget(10 * MIB)
    with budget.reserve(50 * MIB):
        assert budget.free == 0
    assert budget.free == 10 * MIB


def test_decoding_waits_for_room_in_the_budget() -> None:
    budget = MemoryBudget(64 * MIB)
    blocker = budget.reserve(64 * MIB)
    decoded: list[object] = []
    data = encode(sample_image(), "PNG")
    worker = threading.Thread(
        target=lambda: decoded.append(decode_image(data, max_pixels=10**8, budget=budget))
    )
    worker.start()
    worker.join(0.5)
    assert worker.is_alive() and not decoded
    blocker.release()
    worker.join(30)
    assert decoded and budget.free == 64 * MIB - decoded[0].bgr.nbytes  # type: ignore[attr-defined]
    decoded.clear()
    gc.collect()
    assert budget.free == 64 * MIB


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_every_decode_returns_its_budget_when_the_pixels_go(fmt: str) -> None:
    budget = MemoryBudget(256 * MIB)
    data = encode(sample_image(), fmt)
    image = decode_image(data, max_pixels=10**8, budget=budget)
    assert budget.free == 256 * MIB - image.bgr.nbytes
    image = image.without_pixels()
    assert budget.free == 256 * MIB
    with pytest.raises(ImageDecodeError):
        decode_image(data[: len(data) // 2], max_pixels=10**8, budget=budget)
    assert budget.free == 256 * MIB


def test_sixteen_bit_png_decodes_without_a_float64_copy() -> None:
    side = 3000
    gradient = (np.add.outer(np.arange(side), np.arange(side)) * 7 % 65536).astype(np.uint16)
    data = encode(Image.fromarray(gradient), "PNG", compress_level=1)
    tracemalloc.start()
    try:
        image = decode_image(data, max_pixels=10**8)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert image.bgr.shape == (side, side, 3) and image.bgr.max() == 255
    # A float64 copy alone is 8 bytes per pixel; uint16 in, BGR out is 2 + 1 + 3.
    assert peak < 7 * side * side, f"{peak / side / side:.1f} bytes per pixel"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_images_above_the_working_size_decode_reduced(fmt: str) -> None:
    big = sample_image().resize((2560, 1772))  # 4.5 Mpx
    image = decode_image(encode(big, fmt), max_pixels=10**8, working_pixels=1_200_000)
    assert reduction_factor(2560 * 1772, 1_200_000) == 2
    assert (image.width, image.height) == (2560, 1772)  # the original's size, for boxes and sidecars
    assert image.bgr.shape == (886, 1280, 3)
    assert image.scale == (2.0, 2.0)
    reference = np.asarray(sample_image())[:, :, ::-1].astype(int)
    assert np.abs(image.bgr.astype(int) - reference).mean() < 6


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow_on_both_paths(orientation: int) -> None:
    small = sample_image().resize((160, 110))
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(small, "JPEG", quality=95, exif=exif.tobytes())
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))[:, :, ::-1]
    for working_pixels in (None, 4_000):  # full size, and reduced in the DCT (3/8 here)
        image = decode_image(data, max_pixels=10**8, working_pixels=working_pixels)
        assert (image.width, image.height) == (expected.shape[1], expected.shape[0])
        height, width = image.bgr.shape[:2]
        assert (width < height) == (expected.shape[1] < expected.shape[0])
        same_size = cv2.resize(expected, (width, height), interpolation=cv2.INTER_AREA)
        assert np.abs(image.bgr.astype(int) - same_size).mean() < (2 if working_pixels is None else 12)


def test_boxes_of_a_reduced_image_are_in_original_pixels(make_client: Callable[..., TestClient]) -> None:
    client = make_client(working_image_pixels=1_200_000)
    small = client.post("/upload-images/", files=[("files", ("t1.jpg", sample_bytes()))]).json()
    big = sample_image().resize((2560, 1772))
    response = client.post("/upload-images/", files=[("files", ("big.jpg", encode(big, quality=95)))])
    assert response.status_code == 200
    result = response.json()["results"][0]
    assert (result["width"], result["height"]) == (2560, 1772)
    reference = sorted(small["results"][0]["faces"], key=lambda f: f["bbox"][0])
    faces = sorted(result["faces"], key=lambda f: f["bbox"][0])
    assert len(faces) == len(reference) == 6
    for got, want in zip(faces, reference, strict=True):
        assert iou(tuple(got["bbox"]), tuple(2 * v for v in want["bbox"])) > 0.9
        for (x, y), (wx, wy) in zip(got["landmarks"], want["landmarks"], strict=True):
            assert abs(x - 2 * wx) < 6 and abs(y - 2 * wy) < 6
