"""People: faces grouped into identities, listed, named, hidden, merged, moved and re-clustered."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Response, status
from fastapi.concurrency import run_in_threadpool

from gpu_app.deps import ServiceDep, require_api_key
from gpu_app.imaging import ImageDecodeError
from gpu_app.people.base import PeopleConflictError, PersonNotFoundError
from gpu_app.people.directory import FaceUnknownError
from gpu_app.people.models import (
    DeletedPersonOut,
    FacePersonRequest,
    MergeRequest,
    PeoplePage,
    PersonDetail,
    PersonFaceOut,
    PersonId,
    PersonOut,
    PersonPatch,
    ReclusterOut,
    ReclusterRequest,
)
from gpu_app.people.sources import collection_records
from gpu_app.people.thumbnails import face_thumbnail
from gpu_app.schemas import (
    CONFLICT,
    INVALID,
    MALFORMED,
    NOT_FOUND,
    NOT_READY,
    UNAUTHORIZED,
    Collection,
    Responses,
)
from gpu_app.service import FaceService

router = APIRouter(
    tags=["people"],
    dependencies=[Depends(require_api_key)],
    responses=MALFORMED | UNAUTHORIZED | NOT_READY | INVALID,
)
THUMBNAIL: Responses = {200: {"content": {"image/jpeg": {}}, "description": "JPEG crop of the face"}}

PersonPath = Annotated[PersonId, Path(description="Person id (32 hex digits)")]


def _person_or_404(service: FaceService, person_id: str) -> PersonOut:
    try:
        return PersonOut.from_person(service.people.get(person_id))
    except PersonNotFoundError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no person {person_id}") from None


@router.get("/people", response_model=PeoplePage, summary="People, most faces first (paged)")
async def list_people(
    service: ServiceDep,
    collection: Annotated[Collection | None, Query(description="Only people of this collection")] = None,
    include_hidden: bool = False,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> PeoplePage:
    people, total = await run_in_threadpool(
        service.people.store.list, collection, offset, limit, include_hidden
    )
    return PeoplePage(
        total=total, offset=offset, limit=limit, people=[PersonOut.from_person(p) for p in people]
    )


@router.get(
    "/people/{person_id}",
    response_model=PersonDetail,
    responses=NOT_FOUND,
    summary="A person's faces (paged)",
)
async def get_person(
    service: ServiceDep,
    person_id: PersonPath,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> PersonDetail:
    def read() -> PersonDetail:
        person = _person_or_404(service, person_id)
        face_ids, _ = service.people.store.faces(person_id, offset, limit)
        records = [r for f in face_ids if (r := service.index.get(f)) is not None]
        return PersonDetail(
            person=person,
            offset=offset,
            limit=limit,
            faces=[PersonFaceOut.from_record(r) for r in records],
            image_ids=list(dict.fromkeys(r.image_id for r in records)),
        )

    return await run_in_threadpool(read)


@router.patch(
    "/people/{person_id}", response_model=PersonOut, responses=NOT_FOUND, summary="Name or hide a person"
)
async def update_person(service: ServiceDep, person_id: PersonPath, body: PersonPatch) -> PersonOut:
    def update() -> PersonOut:
        _person_or_404(service, person_id)
        person = service.people.store.update(
            person_id, name=body.name, set_name="name" in body.model_fields_set, hidden=body.hidden
        )
        return PersonOut.from_person(person)

    return await run_in_threadpool(update)


@router.post(
    "/people/{person_id}/merge",
    response_model=PersonOut,
    responses=NOT_FOUND | CONFLICT,
    summary="Merge other people into this one (their faces move here; they are deleted)",
)
async def merge_people(service: ServiceDep, person_id: PersonPath, body: MergeRequest) -> PersonOut:
    def merge() -> PersonOut:
        sources = list(dict.fromkeys(body.ids))
        # Everything is checked before anything moves: a bad id changes nothing.
        target = _person_or_404(service, person_id)
        if person_id in sources:
            raise HTTPException(status.HTTP_409_CONFLICT, f"cannot merge person {person_id} into itself")
        for source_id in sources:
            source = _person_or_404(service, source_id)
            if source.collection != target.collection:
                raise HTTPException(
                    status.HTTP_409_CONFLICT,
                    f"person {source_id} is in collection {source.collection!r}, {person_id} in "
                    f"{target.collection!r}: a person never mixes collections",
                )
        person = None
        for source_id in sources:
            person = service.people.merge(source_id, person_id)
        assert person is not None
        return PersonOut.from_person(person)

    return await run_in_threadpool(merge)


@router.delete(
    "/people/{person_id}",
    response_model=DeletedPersonOut,
    responses=NOT_FOUND,
    summary="Delete a person (its faces stay, unassigned)",
)
async def delete_person(service: ServiceDep, person_id: PersonPath) -> DeletedPersonOut:
    try:
        count = await run_in_threadpool(service.people.delete, person_id)
    except PersonNotFoundError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no person {person_id}") from None
    return DeletedPersonOut(person_id=person_id, unassigned_faces=count)


@router.put(
    "/faces/{face_id}/person",
    response_model=PersonOut,
    responses=NOT_FOUND | CONFLICT,
    summary="Move a face to another person (or to a new one)",
)
async def move_face(service: ServiceDep, face_id: str, body: FacePersonRequest) -> PersonOut:
    try:
        person = await run_in_threadpool(service.people.move_face, face_id, body.person_id)
    except FaceUnknownError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no face {face_id}") from None
    except PersonNotFoundError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no person {body.person_id}") from None
    except PeopleConflictError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return PersonOut.from_person(person)


@router.post("/people/recluster", response_model=ReclusterOut, summary="Re-cluster a collection from scratch")
async def recluster(
    service: ServiceDep, body: Annotated[ReclusterRequest | None, Body()] = None
) -> ReclusterOut:
    collection = (body or ReclusterRequest()).collection

    def run() -> ReclusterOut:
        result = service.people.recluster(collection, collection_records(service, collection))
        policy = service.people.policy
        return ReclusterOut.from_result(result, policy.threshold, policy.min_faces)

    return await run_in_threadpool(run)


@router.get(
    "/faces/{face_id}/thumbnail",
    response_class=Response,
    responses=THUMBNAIL | NOT_FOUND,
    summary="A face's thumbnail",
)
async def get_thumbnail(service: ServiceDep, face_id: str) -> Response:
    try:
        jpeg = await run_in_threadpool(face_thumbnail, service, face_id)
    except ImageDecodeError as exc:  # the stored image cannot be decoded any more
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"no thumbnail for face {face_id}: {exc.reason}"
        ) from None
    if jpeg is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no face {face_id}")
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})
