"""Search by an uploaded image (every face, or the largest) or by a stored face id."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, HTTPException, UploadFile, status
from fastapi.concurrency import run_in_threadpool

from gpu_app.deps import RuntimeDep, ServiceDep, require_api_key
from gpu_app.imaging import ImageDecodeError
from gpu_app.index import SearchFilters
from gpu_app.people.base import PeopleConflictError, PersonNotFoundError
from gpu_app.schemas import (
    CONFLICT,
    INVALID,
    MALFORMED,
    NOT_FOUND,
    NOT_READY,
    TOO_LARGE,
    UNAUTHORIZED,
    UNSUPPORTED,
    Collection,
    QueryOut,
    SearchResponse,
)
from gpu_app.service import FaceNotFoundError

router = APIRouter(
    tags=["search"],
    dependencies=[Depends(require_api_key)],
    responses=MALFORMED | UNAUTHORIZED | NOT_READY | INVALID | NOT_FOUND | TOO_LARGE | UNSUPPORTED | CONFLICT,
)


@router.post("/search", response_model=SearchResponse, summary="Top-k similar faces (multipart form)")
async def search(
    service: ServiceDep,
    runtime: RuntimeDep,
    file: Annotated[UploadFile | None, File(description="Image whose faces to look for")] = None,
    face_id: Annotated[str | None, Form(description="Or: a stored face to look for")] = None,
    person_id: Annotated[
        str | None,
        Form(
            description="Or: a person to look for (the mean of their faces; the answer's face_id is "
            "the person's representative face)"
        ),
    ] = None,
    k: Annotated[int, Form(ge=1, le=1000)] = 10,
    threshold: Annotated[
        float | None, Form(ge=-1, le=1, description="Minimum cosine similarity (default per model pack)")
    ] = None,
    faces: Annotated[Literal["all", "largest"], Form(description="Which faces of the image")] = "all",
    collection: Annotated[Collection | None, Form()] = None,
    image_id: Annotated[str | None, Form(description="Only faces of this image")] = None,
) -> SearchResponse:
    if sum(source is not None for source in (file, face_id, person_id)) != 1:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "send exactly one of `file`, `face_id` or `person_id`"
        )
    filters = SearchFilters(collection=collection, image_id=image_id)
    limit = runtime.settings.effective_match_threshold if threshold is None else threshold
    if person_id is not None:
        try:
            queries = [
                await run_in_threadpool(
                    service.search_person, person_id, k=k, threshold=limit, filters=filters
                )
            ]
        except PersonNotFoundError:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no person {person_id}") from None
        except PeopleConflictError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    elif face_id is not None:
        try:
            queries = [
                await run_in_threadpool(service.search_face, face_id, k=k, threshold=limit, filters=filters)
            ]
        except FaceNotFoundError:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no face {face_id}") from None
    else:
        assert file is not None
        data = await file.read(runtime.settings.max_upload_bytes + 1)
        if len(data) > runtime.settings.max_upload_bytes:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "query image above MAX_UPLOAD_BYTES")
        try:
            queries = await run_in_threadpool(
                service.search_image, data, k=k, threshold=limit, mode=faces, filters=filters
            )
        except ImageDecodeError as exc:
            raise HTTPException(exc.status, exc.reason) from None
    hit_ids = [hit.face_id for q in queries for hit in q.matches]
    people = await run_in_threadpool(service.people.people_of_faces, hit_ids) if hit_ids else {}
    return SearchResponse(
        model_pack=service.model_pack,
        threshold=limit,
        k=k,
        queries=[QueryOut.from_query(q, people) for q in queries],
    )
