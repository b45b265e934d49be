"""Decoding of every input kind the service accepts, and clear refusals of the rest."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from gpu_app.imaging import ImageDecodeError, decode_image
from tests.support.images import encode, png_header_only, sample_bytes, sample_image

LIMIT = 40_000_000


def decode(data: bytes) -> np.ndarray:
    return decode_image(data, max_pixels=LIMIT, min_side=16).bgr


@pytest.fixture(scope="module")
def small() -> Image.Image:
    return sample_image().resize((128, 96))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP"])
def test_common_formats_decode_to_bgr(small: Image.Image, fmt: str) -> None:
    bgr = decode(encode(small, fmt))
    assert bgr.shape == (96, 128, 3) and bgr.dtype == np.uint8
    reference = np.asarray(small)[:, :, ::-1].astype(int)
    tolerance = 0 if fmt in {"PNG", "BMP"} else 30  # lossy codecs
    assert np.abs(bgr.astype(int) - reference).mean() <= tolerance


def test_channel_order_is_bgr() -> None:
    red = Image.new("RGB", (32, 32), (255, 0, 0))
    assert tuple(decode(encode(red, "PNG"))[0, 0]) == (0, 0, 255)


def test_exif_orientation_is_applied(small: Image.Image) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    bgr = decode(encode(small, "JPEG", exif=exif.tobytes()))
    assert bgr.shape == (128, 96, 3)


@pytest.mark.parametrize("mode", ["L", "P", "CMYK", "RGBA", "LA", "1"])
def test_modes_become_three_channels(small: Image.Image, mode: str) -> None:
    converted = small.convert(mode)
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    bgr = decode(encode(converted, fmt))
    assert bgr.shape == (96, 128, 3)


def test_transparent_pixels_become_white() -> None:
    image = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    assert tuple(decode(encode(image, "PNG"))[0, 0]) == (255, 255, 255)


def test_sixteen_bit_grayscale_keeps_its_range() -> None:
    gradient = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)
    bgr = decode(encode(Image.fromarray(gradient), "PNG"))
    assert bgr.shape == (64, 64, 3)
    assert bgr.max() == 255 and bgr.min() == 0  # scaled, not clipped to white


def test_decompression_bomb_refused_from_header_alone() -> None:
    with pytest.raises(ImageDecodeError) as caught:
        decode(png_header_only(50_000, 50_000))
    assert caught.value.status == 413
    assert "2500000000 pixels" in caught.value.reason


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"this is text, not a jpeg\n" * 4, "not a recognised image"),
        (sample_bytes()[:4000], "corrupt or truncated"),
        (encode(Image.new("RGB", (1, 1)), "PNG"), "smaller than 16 px"),
        (encode(Image.new("RGB", (32, 32)), "TIFF"), None),
    ],
    ids=["empty", "text", "truncated-jpeg", "one-pixel", "tiff-accepted"],
)
def test_bad_inputs_fail_with_a_reason(data: bytes, reason: str | None) -> None:
    if reason is None:
        assert decode(data).shape == (32, 32, 3)
        return
    with pytest.raises(ImageDecodeError) as caught:
        decode(data)
    assert reason in caught.value.reason
    assert 400 <= caught.value.status < 500


def test_jpeg_with_a_trailer_after_its_end_marker_decodes(small: Image.Image) -> None:
    # Motion photos and some cameras append data after the JPEG's end-of-image marker.
    data = encode(small, "JPEG")
    assert decode(data + b"MotionPhoto_Data" + bytes(range(256)) * 4).shape == decode(data).shape


def test_jpeg_and_pillow_paths_agree(small: Image.Image) -> None:
    data = encode(small, "JPEG", quality=95)
    jpeg = decode(data)  # libjpeg-turbo straight to BGR
    pillow = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))[:, :, ::-1]
    assert np.abs(jpeg.astype(int) - pillow.astype(int)).mean() < 2


@pytest.mark.parametrize("mode", ["RGB", "L", "CMYK"])
@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
@pytest.mark.parametrize("cut", [0.3, 0.8])
def test_truncated_jpeg_ending_in_an_end_marker_is_refused(mode: str, progressive: bool, cut: float) -> None:
    # libjpeg fills what is missing with gray and only warns; the end marker hides the cut.
    data = encode(sample_image().convert(mode), "JPEG", quality=90, progressive=progressive)
    damaged = data[: int(len(data) * cut)] + b"\xff\xd9"
    with pytest.raises(ImageDecodeError) as caught:
        decode(damaged)
    assert caught.value.status == 422
    assert "truncated" in caught.value.reason and "premature end" in caught.value.reason.lower()


def test_a_harmless_jpeg_oddity_still_decodes(small: Image.Image) -> None:
    # Stray bytes before the end marker: libjpeg warns ("extraneous bytes"), every viewer shows it.
    data = encode(small, "JPEG")
    odd = data[:-2] + b"\x00\x17\x2a" + b"\xff\xd9"
    assert np.abs(decode(odd).astype(int) - decode(data).astype(int)).mean() == 0


def test_truncated_jpeg_is_refused_over_http(client: TestClient) -> None:
    data = sample_bytes()
    damaged = data[: len(data) // 2] + b"\xff\xd9"
    upload = client.post("/upload-images/", files=[("files", ("cut.jpg", damaged))])
    assert upload.status_code == 422
    assert "truncated" in upload.json()["results"][0]["error"]["reason"]
    search = client.post("/search", files={"file": ("cut.jpg", damaged)})
    assert search.status_code == 422 and "truncated" in search.json()["detail"]
