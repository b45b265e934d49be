"""Face thumbnails: one small JPEG per image holding a 160x160 crop of each face, next to its sidecar.

One object per image, not per face: a group photo costs one more PUT, not one per face (on S3 each
is a request). Face i of the image (face id `<image_id>-00i`) is the i-th tile from the left.
Made at ingest (FACE_THUMBNAILS, on by default) from the pixels inference ran on, cut right after
detection and before those pixels are released: no second decode. An image without a stored strip
(ingested before, or a failed write) gets one, from a decode of the stored image, on the first
request of one of its faces.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np
from PIL import Image

from gpu_app.imaging import DecodedImage, decode_image
from gpu_app.storage import ObjectNotFoundError, StorageError
from gpu_app.storage.base import image_folder

if TYPE_CHECKING:
    from gpu_app.service import FaceService

log = logging.getLogger(__name__)

THUMBNAIL_SIDE = 160  # pixels, square
# A JPEG, named without an image extension: listings of images (a Batch `embed` of a prefix, the
# dispatcher's image count) must never take it for an input photo.
THUMBNAILS_NAME = "faces.thumbs"
_MARGIN = 0.25  # of the box's longer side, on every side: hair and chin stay in the picture
_JPEG_QUALITY = 85

BBox = Sequence[float]


def thumbnail_key(prefix: str, image_id: str) -> str:
    """The image's strip of face thumbnails."""
    return f"{image_folder(prefix, image_id)}{THUMBNAILS_NAME}"


def face_index(face_id: str) -> int:
    """The face's place in its image (face ids are `<image_id>-NNN`, see service.face_id_of)."""
    return int(face_id.rsplit("-", 1)[1])


def crop_tile(bgr: np.ndarray, bbox: BBox, scale: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """A THUMBNAIL_SIDE square around `bbox` (original pixels; `scale` maps `bgr` pixels to those),
    letterboxed in grey so a face at the picture's edge is not stretched."""
    x1, y1, x2, y2 = (bbox[0] / scale[0], bbox[1] / scale[1], bbox[2] / scale[0], bbox[3] / scale[1])
    half = max(x2 - x1, y2 - y1) * (0.5 + _MARGIN)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    height, width = bgr.shape[:2]
    left, top = max(0, int(cx - half)), max(0, int(cy - half))
    right, bottom = min(width, int(np.ceil(cx + half))), min(height, int(np.ceil(cy + half)))
    crop = bgr[top:bottom, left:right]
    if crop.size == 0:  # a box outside the picture (cannot come from the detector)
        return np.full((THUMBNAIL_SIDE, THUMBNAIL_SIDE, 3), 128, dtype=np.uint8)
    longer = max(crop.shape[:2])
    square = np.full((longer, longer, 3), 128, dtype=np.uint8)
    oy, ox = (longer - crop.shape[0]) // 2, (longer - crop.shape[1]) // 2
    square[oy : oy + crop.shape[0], ox : ox + crop.shape[1]] = crop
    return cv2.resize(square, (THUMBNAIL_SIDE, THUMBNAIL_SIDE), interpolation=cv2.INTER_AREA)


def encode_jpeg(pixels: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
    if not ok:
        raise ValueError("JPEG encoding of a thumbnail failed")
    return encoded.tobytes()


def strip_of(decoded: DecodedImage, boxes: Sequence[BBox]) -> bytes:
    """The JPEG strip of the faces at `boxes` (original pixels, face order) of a decoded image."""
    return encode_jpeg(np.hstack([crop_tile(decoded.bgr, box, decoded.scale) for box in boxes]))


def _strip(service: FaceService, data: bytes, boxes: Sequence[BBox]) -> bytes:
    return strip_of(_decode_for(service, data, boxes), boxes)


def _decode_for(service: FaceService, data: bytes, boxes: Sequence[BBox]) -> DecodedImage:
    """The image decoded as small as its smallest face's tile allows: a JPEG reduced by 2, 4 or 8
    in the DCT decodes several times faster, and a tile never needs more than THUMBNAIL_SIDE pixels."""
    smallest = min(min(x2 - x1, y2 - y1) for x1, y1, x2, y2 in boxes)
    factor = int(max(1.0, min(8.0, smallest * (1 + 2 * _MARGIN) / THUMBNAIL_SIDE)))
    options = service.options
    with Image.open(io.BytesIO(data)) as header:
        pixels = header.size[0] * header.size[1]
    return decode_image(
        data,
        max_pixels=options.max_image_pixels,
        working_pixels=min(options.working_image_pixels, math.ceil(pixels / factor**2)),
        budget=service.decode_budget,
    )


def store_thumbnails(service: FaceService, image_id: str, strip: bytes) -> bool:
    """Store the image's strip (see `strip_of`). Failures are logged, never raised: a missing strip
    is made again on request."""
    try:
        service.storage.put(thumbnail_key(service.prefix, image_id), strip, "image/jpeg")
    except StorageError as exc:
        log.warning("thumbnails of image %s not stored (made on request instead): %s", image_id, exc)
        return False
    return True


def face_thumbnail(service: FaceService, face_id: str) -> bytes | None:
    """The face's 160x160 JPEG, cut from its image's strip (made and stored when missing);
    None: no such face."""
    record = service.index.get(face_id)
    if record is None:
        return None
    index = face_index(face_id)
    key = thumbnail_key(service.prefix, record.image_id)
    try:
        strip = cv2.imdecode(np.frombuffer(service.storage.get(key), dtype=np.uint8), cv2.IMREAD_COLOR)
    except ObjectNotFoundError:
        strip = None
    if strip is None or strip.shape[1] < (index + 1) * THUMBNAIL_SIDE:
        sidecars = service.image_sidecars(record.image_id)
        faces = sidecars[0][1].faces if sidecars else ()
        boxes = [f.bbox for f in sorted(faces, key=lambda f: face_index(f.face_id))] or [record.bbox]
        if len(boxes) <= index:
            boxes = [*boxes, *([record.bbox] * (index + 1 - len(boxes)))]
        jpeg = _strip(service, service.storage.get(record.storage_key), boxes)
        try:
            service.storage.put(key, jpeg, "image/jpeg")
        except StorageError as exc:
            log.warning("thumbnails of image %s not stored: %s", record.image_id, exc)
        strip = cv2.imdecode(np.frombuffer(jpeg, dtype=np.uint8), cv2.IMREAD_COLOR)
        assert strip is not None, "the strip just encoded decodes"
    return encode_jpeg(strip[:, index * THUMBNAIL_SIDE : (index + 1) * THUMBNAIL_SIDE])
