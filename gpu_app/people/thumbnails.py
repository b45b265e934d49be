"""Face thumbnails: a small JPEG crop per face, stored next to the image's sidecar.

Made at ingest (FACE_THUMBNAILS, on by default) from a second, budgeted decode of the image, one
image at a time: the first decode's pixels are released as soon as inference has them, so a large
upload never holds every image's pixels waiting for its thumbnails. A face without a stored
thumbnail (an image ingested before, or a failed write) gets one on first request.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np

from gpu_app.storage import ObjectNotFoundError, StorageError
from gpu_app.storage.base import image_folder

if TYPE_CHECKING:
    from gpu_app.service import FaceService

log = logging.getLogger(__name__)

THUMBNAIL_SIDE = 160  # pixels, square
THUMBNAIL_SUFFIX = ".thumb.jpg"
_MARGIN = 0.25  # of the box's longer side, on every side: hair and chin stay in the picture
_JPEG_QUALITY = 85


def thumbnail_key(prefix: str, image_id: str, face_id: str) -> str:
    return f"{image_folder(prefix, image_id)}{face_id}{THUMBNAIL_SUFFIX}"


def crop_thumbnail(
    bgr: np.ndarray,
    bbox: Sequence[float],
    scale: tuple[float, float] = (1.0, 1.0),
    side: int = THUMBNAIL_SIDE,
) -> bytes:
    """A square JPEG around `bbox` (original pixels; `scale` maps `bgr` pixels to those)."""
    x1, y1, x2, y2 = (bbox[0] / scale[0], bbox[1] / scale[1], bbox[2] / scale[0], bbox[3] / scale[1])
    half = max(x2 - x1, y2 - y1) * (0.5 + _MARGIN)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    height, width = bgr.shape[:2]
    left, top = max(0, int(cx - half)), max(0, int(cy - half))
    right, bottom = min(width, int(np.ceil(cx + half))), min(height, int(np.ceil(cy + half)))
    crop = bgr[top:bottom, left:right]
    if crop.size == 0:  # a box outside the picture (cannot come from the detector): a grey square
        crop = np.full((side, side, 3), 128, dtype=np.uint8)
    longer = max(crop.shape[:2])
    # Letterboxed into a square, so a face at the picture's edge is not stretched.
    square = np.full((longer, longer, 3), 128, dtype=np.uint8)
    oy, ox = (longer - crop.shape[0]) // 2, (longer - crop.shape[1]) // 2
    square[oy : oy + crop.shape[0], ox : ox + crop.shape[1]] = crop
    small = cv2.resize(square, (side, side), interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
    if not ok:
        raise ValueError("JPEG encoding of a thumbnail failed")
    return encoded.tobytes()


def store_thumbnails(
    service: FaceService, data: bytes, image_id: str, faces: Sequence[tuple[str, Sequence[float]]]
) -> int:
    """Crop and store a thumbnail of each (face_id, bbox) of the image; returns how many were stored.
    Failures are logged, never raised: a missing thumbnail is made again on request."""
    if not faces:
        return 0
    try:
        decoded = service.decode(data)
        crops = [(face_id, crop_thumbnail(decoded.bgr, bbox, decoded.scale)) for face_id, bbox in faces]
        del decoded
        for face_id, jpeg in crops:
            service.storage.put(thumbnail_key(service.prefix, image_id, face_id), jpeg, "image/jpeg")
    except (StorageError, ValueError) as exc:
        log.warning("thumbnails of image %s not stored (made on request instead): %s", image_id, exc)
        return 0
    return len(crops)


def face_thumbnail(service: FaceService, face_id: str) -> bytes | None:
    """The face's stored thumbnail, made (and stored) from its image when missing; None: no face."""
    record = service.index.get(face_id)
    if record is None:
        return None
    key = thumbnail_key(service.prefix, record.image_id, face_id)
    try:
        return service.storage.get(key)
    except ObjectNotFoundError:
        pass
    decoded = service.decode(service.storage.get(record.storage_key))
    jpeg = crop_thumbnail(decoded.bgr, record.bbox, decoded.scale)
    try:
        service.storage.put(key, jpeg, "image/jpeg")
    except StorageError as exc:
        log.warning("thumbnail of face %s not stored: %s", face_id, exc)
    return jpeg
