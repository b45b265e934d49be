"""Request and response models of the HTTP API (they shape the OpenAPI docs at /docs)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from gpu_app.index import FaceRecord, SearchHit
from gpu_app.service import ImageOutcome, QueryFace
from gpu_app.sidecar import SidecarFace

Collection = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
BBox = tuple[float, float, float, float]


class ErrorOut(BaseModel):
    status: int = Field(description="HTTP status this file alone would get")
    reason: str


class FaceOut(BaseModel):
    face_id: str
    bbox: BBox
    landmarks: list[tuple[float, float]] = Field(default_factory=list)
    det_score: float

    @classmethod
    def from_sidecar(cls, face: SidecarFace) -> FaceOut:
        return cls(
            face_id=face.face_id, bbox=face.bbox, landmarks=list(face.landmarks), det_score=face.det_score
        )


class FileResult(BaseModel):
    file: str
    status: Literal["ok", "error"]
    image_id: str | None = None
    storage_key: str | None = None
    width: int | None = None
    height: int | None = None
    faces: list[FaceOut] = Field(default_factory=list)
    indexed: bool = False
    warning: str | None = None
    error: ErrorOut | None = None

    @classmethod
    def from_outcome(cls, outcome: ImageOutcome) -> FileResult:
        return cls(
            file=outcome.file,
            status="ok" if outcome.ok else "error",
            image_id=outcome.image_id,
            storage_key=outcome.storage_key,
            width=outcome.width,
            height=outcome.height,
            faces=[FaceOut.from_sidecar(f) for f in outcome.faces],
            indexed=outcome.indexed,
            warning=outcome.warning,
            error=ErrorOut(status=outcome.error.status, reason=outcome.error.reason)
            if outcome.error
            else None,
        )


class BatchResponse(BaseModel):
    model_pack: str
    embedding_dim: int
    results: list[FileResult]
    succeeded: int
    failed: int


class ProcessRequest(BaseModel):
    files: list[str] = Field(min_length=1, description="Object keys already in storage")
    collection: Collection = "default"


class MatchOut(BaseModel):
    face_id: str
    image_id: str
    storage_key: str
    collection: str
    bbox: BBox
    det_score: float
    similarity: float = Field(description="Cosine similarity, 1.0 = identical embedding")

    @classmethod
    def from_hit(cls, hit: SearchHit) -> MatchOut:
        return cls(
            face_id=hit.face_id,
            image_id=hit.image_id,
            storage_key=hit.storage_key,
            collection=hit.collection,
            bbox=hit.bbox,
            det_score=hit.det_score,
            similarity=round(hit.similarity, 6),
        )


class QueryOut(BaseModel):
    face_id: str | None = Field(None, description="Set when searching by face id")
    bbox: BBox
    det_score: float
    matches: list[MatchOut]

    @classmethod
    def from_query(cls, query: QueryFace) -> QueryOut:
        return cls(
            face_id=query.face_id,
            bbox=query.bbox,
            det_score=query.det_score,
            matches=[MatchOut.from_hit(h) for h in query.matches],
        )


class SearchResponse(BaseModel):
    model_pack: str
    threshold: float
    k: int
    queries: list[QueryOut]


class FaceRecordOut(BaseModel):
    face_id: str
    image_id: str
    storage_key: str
    model_pack: str
    collection: str
    bbox: BBox
    det_score: float
    created_at: str
    embedding: list[float] | None = None

    @classmethod
    def from_record(cls, record: FaceRecord, include_embedding: bool) -> FaceRecordOut:
        return cls(
            face_id=record.face_id,
            image_id=record.image_id,
            storage_key=record.storage_key,
            model_pack=record.model_pack,
            collection=record.collection,
            bbox=record.bbox,
            det_score=record.det_score,
            created_at=record.created_at,
            embedding=[float(v) for v in record.embedding] if include_embedding else None,
        )


class ImageOut(BaseModel):
    image_id: str
    storage_key: str
    original_name: str
    model_pack: str
    collection: str
    width: int
    height: int
    created_at: str
    faces: list[FaceOut]


class JobAccepted(BaseModel):
    job_id: str
    status: str
    status_url: str
    total: int


class JobOut(BaseModel):
    job_id: str
    status: Literal["queued", "running", "retrying", "succeeded", "failed"] = Field(
        description="`succeeded` once every file is stored or refused for its own fault; "
        "`retrying` while files wait for storage to come back"
    )
    created_at: str
    finished_at: str | None
    total: int
    done: int = Field(description="Files with a final result (stored, or refused for their own fault)")
    succeeded: int
    failed: int = Field(description="Files refused for their own fault (never retried)")
    pending: int = Field(0, description="Accepted files still spooled, to be (re)tried")
    retry_reason: str | None = Field(None, description="Why pending files wait (e.g. storage unavailable)")
    next_attempt_at: str | None = None
    error: str | None
    results: list[FileResult]
