"""Decode untrusted image bytes into the BGR uint8 array InsightFace expects, or fail clearly."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Pillow's own bomb check would warn or raise with its own limit; ours is explicit and configurable.
Image.MAX_IMAGE_PIXELS = None

SUPPORTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "MPO", "TIFF", "GIF"})
_FAST_JPEG_FORMATS = frozenset({"JPEG", "MPO"})


class ImageDecodeError(ValueError):
    """A file that is not a usable image. `status` is the HTTP status it maps to."""

    def __init__(self, reason: str, status: int = 422) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True, slots=True)
class DecodedImage:
    bgr: np.ndarray  # (H, W, 3) uint8, EXIF orientation applied
    format: str
    width: int
    height: int


def decode_image(data: bytes, *, max_pixels: int, min_side: int = 1) -> DecodedImage:
    """Decode JPEG/PNG/WebP/BMP (and TIFF/GIF first frame) of any common mode into BGR uint8."""
    if not data:
        raise ImageDecodeError("empty file")
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageDecodeError("not a recognised image (supported: JPEG, PNG, WebP, BMP)") from None
    except (OSError, ValueError) as exc:
        raise ImageDecodeError(f"unreadable image header: {exc}") from None
    if image.format not in SUPPORTED_FORMATS:
        raise ImageDecodeError(f"unsupported image format {image.format}")
    width, height = image.size
    # Checked on the header, before any pixel is decoded: a 50000x50000 PNG is refused for free.
    if width * height > max_pixels:
        raise ImageDecodeError(
            f"image is {width}x{height} = {width * height} pixels, above the limit of {max_pixels}",
            status=413,
        )
    if min(width, height) < min_side:
        raise ImageDecodeError(f"image is {width}x{height}, smaller than {min_side} px on a side")
    # The fast path only takes JPEGs that end in their end-of-image marker: libjpeg pads a truncated
    # file with gray and merely warns. Anything else (trailers of motion photos, damage) goes to Pillow,
    # which decodes trailers and refuses truncation.
    if (
        image.format in _FAST_JPEG_FORMATS
        and image.mode in {"RGB", "L"}
        and data.rstrip(b"\0").endswith(b"\xff\xd9")
    ):
        return _decode_jpeg_fast(data, image.format)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image.load()
        image = ImageOps.exif_transpose(image) or image
        rgb = _to_rgb_array(image)
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageDecodeError(f"corrupt or truncated image data: {exc}") from None
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    return DecodedImage(
        bgr=bgr, format=str(image.format or "").upper() or "UNKNOWN", width=bgr.shape[1], height=bgr.shape[0]
    )


def _decode_jpeg_fast(data: bytes, fmt: str) -> DecodedImage:
    """The common case (an 8-bit RGB or gray JPEG) straight to BGR with OpenCV: 2-4x faster than
    Pillow plus its conversions, and OpenCV applies the EXIF orientation itself."""
    import cv2

    bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageDecodeError("corrupt or truncated image data: the JPEG stream does not decode")
    # The header checks above already hold: an EXIF rotation swaps the sides, never shrinks them.
    height, width = bgr.shape[:2]
    return DecodedImage(bgr=bgr, format=fmt, width=width, height=height)


def _to_rgb_array(image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode in {"I;16", "I;16B", "I;16L", "I;16N", "I", "F"}:
        # 16-bit / 32-bit grayscale: Pillow's convert("RGB") would clip; scale to the full 8-bit range.
        gray = np.asarray(image, dtype=np.float64)
        top = gray.max()
        scaled = (gray * (255.0 / top)).round() if top > 0 else gray
        gray8 = np.clip(scaled, 0, 255).astype(np.uint8)
        return np.repeat(gray8[:, :, None], 3, axis=2)
    if mode in {"RGBA", "LA", "PA"} or (mode == "P" and "transparency" in image.info):
        # Transparent pixels over white, as a viewer shows them (black would hide dark hair edges).
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    return np.asarray(image.convert("RGB"))  # L, P, CMYK, YCbCr, RGB, 1
