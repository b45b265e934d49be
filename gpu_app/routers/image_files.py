"""A stored image's bytes, for the web page to show it and crop face thumbnails from it."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Response, status
from fastapi.concurrency import run_in_threadpool

from gpu_app.deps import ServiceDep, require_api_key
from gpu_app.schemas import INVALID, NOT_FOUND, NOT_READY, UNAUTHORIZED
from gpu_app.service import CONTENT_TYPES

# Formats a browser may show beside those the service stores with their own type.
MEDIA_TYPES = CONTENT_TYPES | {"BMP": "image/bmp", "GIF": "image/gif", "TIFF": "image/tiff"}

router = APIRouter(
    tags=["images"],
    dependencies=[Depends(require_api_key)],
    responses=UNAUTHORIZED | NOT_READY | INVALID | NOT_FOUND,
)


@router.get(
    "/images/{image_id}/file",
    summary="The stored image's bytes, as uploaded (boxes in GET /images/{image_id} are in its pixels)",
    response_class=Response,
    responses={200: {"content": {"image/*": {"schema": {"type": "string", "format": "binary"}}}}},
)
async def get_image_file(image_id: str, service: ServiceDep) -> Response:
    sidecars = await run_in_threadpool(service.image_sidecars, image_id)
    if not sidecars:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no image {image_id}")
    sidecar = sidecars[-1][1]
    # A missing object answers 404 and an outage 503 (the app's storage exception handlers).
    data = await run_in_threadpool(service.storage.get, sidecar.storage_key)
    return Response(
        data,
        media_type=MEDIA_TYPES.get(sidecar.format, "application/octet-stream"),
        headers={
            # The id is a hash of the bytes: the same id always names the same image.
            "Cache-Control": "private, max-age=86400",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )
