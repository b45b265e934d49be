"""1:1 verification: are two faces (from images or stored face ids) the same person?"""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, File, Form, HTTPException, UploadFile, status
from fastapi.concurrency import run_in_threadpool

from gpu_app.deps import ServiceDep, require_api_key
from gpu_app.imaging import ImageDecodeError
from gpu_app.people.models import VerifiedFace, VerifyOut
from gpu_app.schemas import INVALID, MALFORMED, NOT_FOUND, NOT_READY, TOO_LARGE, UNAUTHORIZED, UNSUPPORTED
from gpu_app.service import FaceService

router = APIRouter(
    tags=["verify"],
    dependencies=[Depends(require_api_key)],
    responses=MALFORMED | UNAUTHORIZED | NOT_READY | INVALID | NOT_FOUND | TOO_LARGE | UNSUPPORTED,
)

FACE_CHOICE = (
    "Which detected face of the image to compare, by index in the image's faces largest first "
    "(default 0: the largest); the answer says which was used and how many were found"
)


class _Side:
    """One side of the comparison: its vector and what the answer says about it."""

    def __init__(self, vector: np.ndarray, described: VerifiedFace) -> None:
        self.vector = vector
        self.described = described


def _stored_side(service: FaceService, label: str, face_id: str) -> _Side:
    record = service.index.get(face_id)
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no face {face_id} (face_id_{label})")
    person = service.people.store.person_of([face_id]).get(face_id)
    return _Side(
        record.embedding,
        VerifiedFace(
            source="face_id",
            face_id=face_id,
            faces_found=1,
            bbox=record.bbox,
            det_score=record.det_score,
            person_id=person,
        ),
    )


def _image_side(service: FaceService, label: str, data: bytes, choice: int) -> _Side:
    try:
        faces = service.detect_faces(data)
    except ImageDecodeError as exc:
        raise HTTPException(exc.status, f"image {label}: {exc.reason}") from None
    if not faces:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"no face found in image {label}")
    faces.sort(key=lambda f: f.area, reverse=True)
    if choice >= len(faces):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"face_{label}={choice} but image {label} has {len(faces)} face(s) (0 to {len(faces) - 1})",
        )
    face = faces[choice]
    return _Side(
        face.embedding,
        VerifiedFace(
            source="image",
            face_index=choice,
            faces_found=len(faces),
            bbox=face.bbox,
            det_score=face.det_score,
        ),
    )


@router.post("/verify", response_model=VerifyOut, summary="Are two faces the same person? (multipart form)")
async def verify(
    service: ServiceDep,
    file_a: Annotated[UploadFile | None, File(description="First image")] = None,
    file_b: Annotated[UploadFile | None, File(description="Second image")] = None,
    face_id_a: Annotated[str | None, Form(description="Or: a stored face as the first")] = None,
    face_id_b: Annotated[str | None, Form(description="Or: a stored face as the second")] = None,
    face_a: Annotated[int, Form(ge=0, le=1000, description=FACE_CHOICE)] = 0,
    face_b: Annotated[int, Form(ge=0, le=1000, description=FACE_CHOICE)] = 0,
    threshold: Annotated[
        float | None, Form(ge=-1, le=1, description="Similarity for `same_person` (default per model pack)")
    ] = None,
) -> VerifyOut:
    limit = service.options.match_threshold if threshold is None else threshold
    sides: list[_Side] = []
    for label, upload, face_id, choice in (
        ("a", file_a, face_id_a, face_a),
        ("b", file_b, face_id_b, face_b),
    ):
        if (upload is None) == (face_id is None):
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"send exactly one of `file_{label}` or `face_id_{label}`",
            )
        if face_id is not None:
            sides.append(await run_in_threadpool(_stored_side, service, label, face_id))
            continue
        assert upload is not None
        data = await upload.read(service.options.max_upload_bytes + 1)
        if len(data) > service.options.max_upload_bytes:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"image {label} above MAX_UPLOAD_BYTES")
        sides.append(await run_in_threadpool(_image_side, service, label, data, choice))
    a, b = sides
    similarity = float(np.clip(np.dot(a.vector, b.vector), -1.0, 1.0))
    return VerifyOut(
        model_pack=service.model_pack,
        similarity=round(similarity, 6),
        threshold=limit,
        same_person=similarity >= limit,
        a=a.described,
        b=b.described,
    )
