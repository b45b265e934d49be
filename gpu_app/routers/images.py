"""Ingest (upload, process keys already in storage), image lookup and deletion."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Request, UploadFile, status
from fastapi.concurrency import run_in_threadpool

from gpu_app.deps import RuntimeDep, ServiceDep, require_api_key
from gpu_app.responses import AsciiJSONResponse
from gpu_app.schemas import (
    BATCH_ERRORS,
    INVALID,
    NOT_FOUND,
    NOT_READY,
    UNAUTHORIZED,
    BatchResponse,
    Collection,
    DeletedOut,
    FaceOut,
    FileResult,
    ImageOut,
    JobAccepted,
    Problem,
    ProcessRequest,
    Responses,
)
from gpu_app.service import FaceService, ImageOutcome
from gpu_app.upload_jobs import QueueFullError

router = APIRouter(
    tags=["images"], dependencies=[Depends(require_api_key)], responses=UNAUTHORIZED | NOT_READY | INVALID
)
BUSY: Responses = {
    429: {"model": Problem, "description": "Async job queue full; retry after Retry-After seconds"}
}
# A batch of files: every file done (200), or some failed (207); an upload may be queued (202).
BATCH_DONE: Responses = {200: {"model": BatchResponse}, 207: {"model": BatchResponse}}
UPLOADED: Responses = {
    200: {"model": BatchResponse},
    202: {"model": JobAccepted},
    207: {"model": BatchResponse},
}


def batch_response(service: FaceService, outcomes: list[ImageOutcome]) -> AsciiJSONResponse:
    """200 when every file succeeded, 207 when some did, else the files' common 4xx/5xx."""
    failed = [o for o in outcomes if not o.ok]
    if not failed:
        code = status.HTTP_200_OK
    elif len(failed) < len(outcomes):
        code = status.HTTP_207_MULTI_STATUS
    else:
        codes = {o.error.status for o in failed if o.error}
        code = codes.pop() if len(codes) == 1 else status.HTTP_422_UNPROCESSABLE_CONTENT
    body = BatchResponse(
        model_pack=service.model_pack,
        embedding_dim=service.engine.info.embedding_dim,
        results=[FileResult.from_outcome(o) for o in outcomes],
        succeeded=len(outcomes) - len(failed),
        failed=len(failed),
    )
    return AsciiJSONResponse(body.model_dump(mode="json"), status_code=code)


def check_file_count(count: int, limit: int) -> None:
    if count > limit:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"{count} files in one request; the limit is MAX_FILES_PER_REQUEST={limit}: split the request",
        )


async def read_uploads(files: list[UploadFile], limit: int) -> list[tuple[str, bytes]]:
    # Read one byte past the limit: enough to know a file is too large without reading it all.
    return [(f.filename or f"file{i}", await f.read(limit + 1)) for i, f in enumerate(files)]


@router.post(
    "/upload-images/",
    summary="Store, detect, embed and index one or many images (multipart field `files`)",
    responses=UPLOADED | BATCH_ERRORS | BUSY,
)
async def upload_images(
    request: Request,
    service: ServiceDep,
    runtime: RuntimeDep,
    files: Annotated[list[UploadFile], File(description="One or more images")],
    collection: Annotated[Collection, Form()] = "default",
    run_async: Annotated[
        bool, Query(alias="async", description="Queue and answer 202 with a job id")
    ] = False,
) -> AsciiJSONResponse:
    settings = runtime.settings
    check_file_count(len(files), settings.max_files_per_request)
    uploads = await read_uploads(files, settings.max_upload_bytes)
    if run_async:
        assert runtime.jobs is not None
        try:
            job = await run_in_threadpool(runtime.jobs.submit, uploads, collection)
        except QueueFullError as exc:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS, str(exc), headers={"Retry-After": "10"}
            ) from None
        accepted = JobAccepted(
            job_id=job.id,
            status=job.status,
            status_url=str(request.url_for("get_job", job_id=job.id)),
            total=job.total,
        )
        return AsciiJSONResponse(accepted.model_dump(), status_code=status.HTTP_202_ACCEPTED)
    outcomes = await run_in_threadpool(service.process_uploads, uploads, collection)
    return batch_response(service, outcomes)


@router.post(
    "/process",
    summary="Detect, embed and index images already in storage (what the instance controller forwards)",
    responses=BATCH_DONE | BATCH_ERRORS,
)
async def process(body: ProcessRequest, service: ServiceDep, runtime: RuntimeDep) -> AsciiJSONResponse:
    check_file_count(len(body.files), runtime.settings.max_files_per_request)
    outcomes = await run_in_threadpool(service.process_keys, body.files, body.collection)
    return batch_response(service, outcomes)


@router.get(
    "/images/{image_id}",
    summary="An image's stored record and faces",
    response_model=ImageOut,
    responses=NOT_FOUND,
)
async def get_image(image_id: str, service: ServiceDep) -> ImageOut:
    sidecars = await run_in_threadpool(service.image_sidecars, image_id)
    if not sidecars:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no image {image_id}")
    sidecar = sidecars[-1][1]
    return ImageOut(
        image_id=sidecar.image_id,
        storage_key=sidecar.storage_key,
        original_name=sidecar.original_name,
        model_pack=sidecar.model_pack,
        collection=sidecar.collection,
        width=sidecar.width,
        height=sidecar.height,
        created_at=sidecar.created_at,
        faces=[FaceOut.from_sidecar(f) for f in sidecar.faces],
    )


@router.delete(
    "/images/{image_id}",
    summary="Remove the image, its sidecar and its vectors",
    response_model=DeletedOut,
    responses=NOT_FOUND,
)
async def delete_image(image_id: str, service: ServiceDep) -> dict[str, object]:
    result = await run_in_threadpool(service.delete_image, image_id)
    if result is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no image {image_id}")
    return result
