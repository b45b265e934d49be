"""Decode untrusted image bytes into the BGR uint8 array InsightFace expects, or fail clearly.

Memory is bounded per image and per process: the header tells the size before any pixel is decoded;
an image above `working_pixels` is decoded smaller (JPEG in its DCT, others by an integer box
reduction right after decoding), and every decode first reserves its peak from a `MemoryBudget`.
"""

from __future__ import annotations

import io
import math
import sys
import warnings
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, UnidentifiedImageError

from gpu_app.engine.base import detector_view
from gpu_app.memory import MemoryBudget

# Pillow's own bomb check would warn or raise with its own limit; ours is explicit and configurable.
Image.MAX_IMAGE_PIXELS = None

SUPPORTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "MPO", "TIFF", "GIF"})
_JPEG_FORMATS = frozenset({"JPEG", "MPO"})
_EXIF_ORIENTATION = 0x0112
# Bytes per pixel Pillow holds for a decoded image of this mode (the rest hold 4).
_PILLOW_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}
# Modes converted at full size before they can be reduced (to L or RGB(A)), or read as uint16.
_FULL_SIZE_CONVERSION = frozenset({"1", "P", "PA", "I;16", "I;16B", "I;16L", "I;16N"})
_PROGRESSIVE_BYTES_PER_PIXEL = 6
_WORKING_COPIES = 12  # bytes per output pixel: the reduced image, its RGB array, the BGR copies
# libjpeg's warnings that mean the scan data stops early (cut file, or an end marker in the middle):
# the decoder fills the rest with gray and would otherwise report success.
_TRUNCATION_WARNINGS = ("premature end", "corrupt jpeg data: premature")
_UNLIMITED = MemoryBudget(sys.maxsize)


class ImageDecodeError(ValueError):
    """A file that is not a usable image. `status` is the HTTP status it maps to."""

    def __init__(self, reason: str, status: int = 422) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


_NO_PIXELS = np.zeros((0, 0, 3), dtype=np.uint8)


@dataclass(frozen=True, slots=True)
class DecodedImage:
    bgr: np.ndarray  # (h, w, 3) uint8, EXIF orientation applied; smaller than width x height if reduced
    format: str
    width: int  # of the original image (oriented): what boxes and sidecars refer to
    height: int
    scale: tuple[float, float] = (1.0, 1.0)  # from `bgr` pixels to original pixels (x, y)

    @classmethod
    def of(cls, bgr: np.ndarray, fmt: str, width: int, height: int) -> DecodedImage:
        return cls(bgr, fmt, width, height, (width / bgr.shape[1], height / bgr.shape[0]))

    def without_pixels(self) -> DecodedImage:
        """Everything but the pixels, once inference has them: their memory (and budget) is freed."""
        return replace(self, bgr=_NO_PIXELS)


def reduction_factor(pixels: int, working_pixels: int | None) -> int:
    """The smallest integer factor that brings `pixels` to at most `working_pixels`."""
    if not working_pixels or pixels <= working_pixels:
        return 1
    return math.ceil(math.sqrt(pixels / working_pixels))


def decode_image(
    data: bytes,
    *,
    max_pixels: int,
    min_side: int = 1,
    det_size: int | None = None,
    working_pixels: int | None = None,
    budget: MemoryBudget | None = None,
) -> DecodedImage:
    """Decode JPEG/PNG/WebP/BMP (and TIFF/GIF first frame) of any common mode into BGR uint8.

    `det_size` refuses images too elongated for the detector; `working_pixels` decodes larger images
    reduced; `budget` makes the decode wait until its memory is free.
    """
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
    if det_size is not None:
        _check_detectable_shape(width, height, det_size, min_side)
    factor = reduction_factor(width * height, working_pixels)
    fmt = str(image.format)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns on odd metadata; errors still raise
        orientation = _orientation(image) if fmt in _JPEG_FORMATS else 1
    if fmt in _JPEG_FORMATS and image.mode in {"RGB", "L"}:
        out_pixels = math.ceil(width / factor) * math.ceil(height / factor)
        cost = out_pixels * 3 * 2  # the BGR array and its oriented copy
        if image.info.get("progressive"):
            # libjpeg buffers every DCT coefficient of a progressive image at full size, reduced
            # output or not: 2 bytes per sample, up to 3 samples per pixel.
            cost += width * height * _PROGRESSIVE_BYTES_PER_PIXEL
        with (budget or _UNLIMITED).reserve(cost) as reservation:
            bgr = _orient(_decode_jpeg(data, width, height, factor, "BGR"), orientation)
            return DecodedImage.of(reservation.keep_for(bgr), fmt, *_oriented(width, height, orientation))
    if fmt in _JPEG_FORMATS:
        _decode_jpeg(data, width, height, 8, "CMYK" if image.mode == "CMYK" else "GRAY")  # refuses truncation
    return _decode_with_pillow(image, fmt, factor, budget or _UNLIMITED)


def _check_detectable_shape(width: int, height: int, det_size: int, min_side: int) -> None:
    """The detector sees every image scaled to det_size on its long side: an image so elongated that
    its short side would shrink below MIN_IMAGE_SIDE there holds no detectable face, and below one
    pixel makes the detector itself fail."""
    view = min(detector_view(width, height, det_size))
    if view < min_side:
        ratio = max(width, height) / min(width, height)
        raise ImageDecodeError(
            f"image is {width}x{height}: its aspect ratio ({ratio:.0f}:1) is "
            f"too elongated for face detection; scaled to DET_SIZE={det_size} px on its long side it keeps "
            f"{view} px on the short side, under MIN_IMAGE_SIDE={min_side} (keep the aspect ratio at most "
            f"{det_size // min_side}:1)"
        )


def _decode_jpeg(data: bytes, width: int, height: int, factor: int, colorspace: str) -> np.ndarray:
    """libjpeg-turbo (simplejpeg), reduced in the DCT by up to `factor`, refusing truncated data."""
    import simplejpeg

    size = {"min_width": math.ceil(width / factor), "min_height": math.ceil(height / factor)}
    try:
        return simplejpeg.decode_jpeg(data, colorspace=colorspace, strict=True, **size)
    except ValueError as exc:
        reason = str(exc)
        if any(marker in reason.lower() for marker in _TRUNCATION_WARNINGS):
            raise ImageDecodeError(f"corrupt or truncated JPEG data: {reason}") from None
    try:  # another recoverable oddity (e.g. extraneous bytes before a marker): decode as viewers do
        return simplejpeg.decode_jpeg(data, colorspace=colorspace, strict=False, **size)
    except ValueError as exc:
        raise ImageDecodeError(f"corrupt JPEG data: {exc}") from None


def _decode_with_pillow(image: Image.Image, fmt: str, factor: int, budget: MemoryBudget) -> DecodedImage:
    full_pixels = image.width * image.height
    out_pixels = math.ceil(image.width / factor) * math.ceil(image.height / factor)
    cost = full_pixels * _PILLOW_BYTES_PER_PIXEL.get(image.mode, 4) + out_pixels * _WORKING_COPIES
    if image.mode in _FULL_SIZE_CONVERSION:
        cost += full_pixels * 4
    with budget.reserve(cost) as reservation:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                image.load()
                orientation = _orientation(image)
            oriented = _oriented(image.width, image.height, orientation)
            bgr = _orient(_pillow_to_bgr(image, factor), orientation)
        except (OSError, ValueError, SyntaxError) as exc:
            raise ImageDecodeError(f"corrupt or truncated image data: {exc}") from None
        finally:
            image.close()
        return DecodedImage.of(reservation.keep_for(bgr), fmt.upper(), *oriented)


def _pillow_to_bgr(image: Image.Image, factor: int) -> np.ndarray:
    """Any Pillow mode to BGR uint8, reduced by `factor` as early as the mode allows."""
    import cv2

    mode = image.mode
    if mode.startswith("I;16") or mode in {"I", "F"}:
        return cv2.cvtColor(_high_depth_to_gray8(image, factor), cv2.COLOR_GRAY2BGR)
    if mode == "1":
        image = image.convert("L")
    elif mode in {"P", "PA"}:
        image = image.convert("RGBA" if mode == "PA" or "transparency" in image.info else "RGB")
    if factor > 1:
        if image.mode not in {"L", "LA", "La", "RGB", "RGBA", "RGBa", "CMYK", "YCbCr"}:
            image = image.convert("RGB")
        image = image.reduce(factor)
    if image.mode in {"RGBA", "LA", "La", "RGBa"}:
        # Transparent pixels over white, as a viewer shows them (black would hide dark hair edges).
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode == "L":
        return cv2.cvtColor(np.asarray(image), cv2.COLOR_GRAY2BGR)
    if image.mode != "RGB":
        image = image.convert("RGB")  # CMYK, YCbCr, ...
    return cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR)


def _high_depth_to_gray8(image: Image.Image, factor: int) -> np.ndarray:
    """16/32-bit grayscale scaled to the full 8-bit range (Pillow's convert would clip), without a
    float64 copy of the image: 16-bit through a lookup table, 32-bit after the reduction."""
    import cv2

    if image.mode.startswith("I;16"):
        gray: np.ndarray = np.asarray(image).astype(np.uint16, copy=False)  # native byte order for OpenCV
        if factor > 1:
            size = (math.ceil(gray.shape[1] / factor), math.ceil(gray.shape[0] / factor))
            gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        top = int(gray.max())
        if top == 0:
            return np.zeros(gray.shape, dtype=np.uint8)
        lut = np.round(np.arange(top + 1) * (255.0 / top)).astype(np.uint8)
        return lut[gray]
    if factor > 1:
        image = image.reduce(factor)
    values = np.asarray(image, dtype=np.float32)
    brightest = float(values.max())
    scaled = np.round(values * (255.0 / brightest)) if brightest > 0 else values
    return np.clip(scaled, 0, 255).astype(np.uint8)


def _orientation(image: Image.Image) -> int:
    try:
        value = int(image.getexif().get(_EXIF_ORIENTATION, 1))
    except (OSError, ValueError, TypeError, SyntaxError):
        return 1  # unreadable EXIF: shown as stored, as viewers do
    return value if 1 <= value <= 8 else 1


def _oriented(width: int, height: int, orientation: int) -> tuple[int, int]:
    return (height, width) if orientation >= 5 else (width, height)


def _orient(bgr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) as Pillow's exif_transpose does; a fresh contiguous array."""
    import cv2

    if orientation == 2:
        return cv2.flip(bgr, 1)
    if orientation == 3:
        return cv2.rotate(bgr, cv2.ROTATE_180)
    if orientation == 4:
        return cv2.flip(bgr, 0)
    if orientation == 5:
        return cv2.transpose(bgr)
    if orientation == 6:
        return cv2.rotate(bgr, cv2.ROTATE_90_CLOCKWISE)
    if orientation == 7:
        return cv2.rotate(cv2.transpose(bgr), cv2.ROTATE_180)
    if orientation == 8:
        return cv2.rotate(bgr, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return bgr
