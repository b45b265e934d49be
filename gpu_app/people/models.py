"""Request and response models of the people and verify routes (OpenAPI shapes)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from contract.names import COLLECTION_PATTERN, DEFAULT_COLLECTION
from gpu_app.index import FaceRecord
from gpu_app.people.base import Person
from gpu_app.people.directory import ReclusterResult

BBox = tuple[float, float, float, float]
PersonName = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]
PersonId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
THUMBNAIL_PATH = "/faces/{face_id}/thumbnail"


def thumbnail_url(face_id: str | None) -> str | None:
    return THUMBNAIL_PATH.format(face_id=face_id) if face_id else None


class PersonOut(BaseModel):
    person_id: str
    collection: str
    name: str | None
    hidden: bool
    face_count: int
    representative_face_id: str | None = Field(description="The person's best-detected face")
    thumbnail_url: str | None = Field(description="JPEG crop of the representative face")

    @classmethod
    def from_person(cls, person: Person) -> PersonOut:
        return cls(
            person_id=person.person_id,
            collection=person.collection,
            name=person.name,
            hidden=person.hidden,
            face_count=person.face_count,
            representative_face_id=person.representative_face_id,
            thumbnail_url=thumbnail_url(person.representative_face_id),
        )


class PeoplePage(BaseModel):
    total: int
    offset: int
    limit: int
    people: list[PersonOut]


class PersonFaceOut(BaseModel):
    face_id: str
    image_id: str
    storage_key: str
    bbox: BBox
    det_score: float
    thumbnail_url: str

    @classmethod
    def from_record(cls, record: FaceRecord) -> PersonFaceOut:
        return cls(
            face_id=record.face_id,
            image_id=record.image_id,
            storage_key=record.storage_key,
            bbox=record.bbox,
            det_score=record.det_score,
            thumbnail_url=THUMBNAIL_PATH.format(face_id=record.face_id),
        )


class PersonDetail(BaseModel):
    person: PersonOut
    offset: int
    limit: int
    faces: list[PersonFaceOut] = Field(description="This page of the person's faces, best detection first")
    image_ids: list[str] = Field(description="Images of this page's faces, each once")


class PersonPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: PersonName | None = Field(None, description="New name; null clears it")
    hidden: bool | None = Field(None, description="Hidden people are left out of GET /people by default")


class MergeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[PersonId] = Field(min_length=1, max_length=100, description="People merged into this one")


class FacePersonRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    person_id: PersonId | None = Field(description="The person to move the face to; null: a new person")


class DeletedPersonOut(BaseModel):
    person_id: str
    unassigned_faces: int


class ReclusterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    collection: Annotated[str, StringConstraints(pattern=COLLECTION_PATTERN)] = DEFAULT_COLLECTION


class ReclusterOut(BaseModel):
    collection: str
    faces: int
    people: int
    unassigned: int = Field(description="Faces still waiting for enough similar faces")
    kept_names: int = Field(description="Named people carried over to the new clustering")
    threshold: float
    min_faces: int

    @classmethod
    def from_result(cls, result: ReclusterResult, threshold: float, min_faces: int) -> ReclusterOut:
        return cls(
            collection=result.collection,
            faces=result.faces,
            people=result.people,
            unassigned=result.unassigned,
            kept_names=result.kept_names,
            threshold=threshold,
            min_faces=min_faces,
        )


class VerifiedFace(BaseModel):
    source: Literal["image", "face_id"]
    face_id: str | None = Field(None, description="The stored face compared (face_id source)")
    face_index: int | None = Field(None, description="Which detected face of the image was compared")
    faces_found: int = Field(description="Faces detected in the image (1 for a stored face)")
    bbox: BBox
    det_score: float
    person_id: str | None = None


class VerifyOut(BaseModel):
    model_pack: str
    similarity: float = Field(description="Cosine similarity of the two faces")
    threshold: float = Field(description="Similarity at or above which they are the same person")
    same_person: bool
    a: VerifiedFace
    b: VerifiedFace
