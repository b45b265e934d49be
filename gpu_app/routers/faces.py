"""Stored faces by id."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.concurrency import run_in_threadpool

from gpu_app.deps import ServiceDep, require_api_key
from gpu_app.schemas import INVALID, NOT_FOUND, NOT_READY, UNAUTHORIZED, FaceRecordOut
from gpu_app.service import FaceNotFoundError

router = APIRouter(
    tags=["faces"],
    dependencies=[Depends(require_api_key)],
    responses=UNAUTHORIZED | NOT_READY | INVALID | NOT_FOUND,
)


@router.get("/faces/{face_id}", response_model=FaceRecordOut, response_model_exclude_none=True)
async def get_face(
    face_id: str,
    service: ServiceDep,
    include_embedding: Annotated[bool, Query(description="Also return the embedding vector")] = False,
) -> FaceRecordOut:
    try:
        record = await run_in_threadpool(service.get_face, face_id)
    except FaceNotFoundError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no face {face_id}") from None
    return FaceRecordOut.from_record(record, include_embedding)
