"""Request and response models of the HTTP API (they shape the OpenAPI docs at /docs)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, StringConstraints

from contract.health import HealthStatus
from contract.names import COLLECTION_PATTERN
from gpu_app.index import FaceRecord, SearchHit
from gpu_app.people.base import Person
from gpu_app.service import ImageOutcome, QueryFace
from gpu_app.sidecar import SidecarFace

# The contract's rule: the Lambdas refuse other names before they start the GPU instance.
Collection = Annotated[str, StringConstraints(pattern=COLLECTION_PATTERN)]
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
    person_id: str | None = Field(None, description="The person this face belongs to, if clustered")
    person_name: str | None = None

    @classmethod
    def from_hit(cls, hit: SearchHit, person: Person | None = None) -> MatchOut:
        return cls(
            face_id=hit.face_id,
            image_id=hit.image_id,
            storage_key=hit.storage_key,
            collection=hit.collection,
            bbox=hit.bbox,
            det_score=hit.det_score,
            similarity=round(hit.similarity, 6),
            person_id=person.person_id if person else None,
            person_name=person.name if person else None,
        )


class QueryOut(BaseModel):
    face_id: str | None = Field(None, description="Set when searching by face id")
    bbox: BBox
    det_score: float
    matches: list[MatchOut]

    @classmethod
    def from_query(cls, query: QueryFace, people: Mapping[str, Person] | None = None) -> QueryOut:
        people = people or {}
        return cls(
            face_id=query.face_id,
            bbox=query.bbox,
            det_score=query.det_score,
            matches=[MatchOut.from_hit(h, people.get(h.face_id)) for h in query.matches],
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


class DeletedOut(BaseModel):
    image_id: str
    deleted_objects: list[str]
    deleted_vectors: int


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


# --- errors: every answer that is not a success has one of these bodies ----------------------------
class Problem(BaseModel):
    """An error of the whole request (400, 401, 404, 413, 429, 503): what went wrong, in words."""

    detail: str


class ValidationIssue(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    loc: list[str | int]
    msg: str
    input: Any = None
    ctx: dict[str, Any] | None = None


class ValidationProblem(BaseModel):
    """422: the request does not match the documented parameters (one issue per field)."""

    detail: list[ValidationIssue]


class InvalidRequest(RootModel[ValidationProblem | Problem]):
    """422: a parameter check (issues) or a rule across parameters (words)."""


class BatchFailure(RootModel[BatchResponse | Problem]):
    """Every file failed with this status (each listed), or the request itself failed."""


class BatchInvalid(RootModel[ValidationProblem | BatchResponse | Problem]):
    """Parameters invalid, or every file failed with mixed statuses."""


# FastAPI's `responses=` type: status code to OpenAPI response fields.
Responses = dict[int | str, dict[str, Any]]


def _error(description: str, model: type[BaseModel]) -> dict[str, Any]:
    return {"description": description, "model": model}


UNAUTHORIZED: Responses = {401: _error("Missing or wrong X-API-Key header", Problem)}
NOT_READY: Responses = {
    503: _error("Not ready (model loading) or storage/index unavailable; retry later", Problem)
}
NOT_FOUND: Responses = {404: _error("No such resource", Problem)}
INVALID: Responses = {422: _error("Parameters do not match the schema", InvalidRequest)}
TOO_LARGE: Responses = {413: _error("Body above the route's size limit", Problem)}
UNSUPPORTED: Responses = {415: _error("Not an image format this service decodes", Problem)}
MALFORMED: Responses = {400: _error("The body cannot be parsed (malformed multipart or JSON)", Problem)}
CONFLICT: Responses = {409: _error("Contradicts the stored people (e.g. a merge into itself)", Problem)}
# Routes that answer one result per file: when every file failed, the status is theirs and the
# body still lists each file (BatchResponse); request-level errors carry a Problem.
BATCH_ERRORS: Responses = {
    400: _error("Malformed body, or every file failed with 400 (e.g. an invalid key)", BatchFailure),
    404: _error("Every file failed with 404 (no such object)", BatchFailure),
    413: _error("Body above the limit, or every file above MAX_UPLOAD_BYTES", BatchFailure),
    415: _error("Every file failed with 415 (format not supported)", BatchFailure),
    422: _error("Parameters invalid, or every file failed (mixed statuses)", BatchInvalid),
    503: _error("Not ready, or storage unavailable for every file; retry later", BatchFailure),
}


# --- health ----------------------------------------------------------------------------------------
class Limits(BaseModel):
    """What one request may carry; the instance controller splits its work by these (the fields of
    contract/health.py `HealthLimits`, pinned by tests/contract)."""

    max_files_per_request: int
    max_upload_bytes: int
    max_request_bytes: int
    max_image_pixels: int


class ModelOut(BaseModel):
    loaded: bool
    pack: str
    embedding_dim: int | None = None
    det_size: list[int] | None = None
    requested_providers: list[str] | None = None
    providers: dict[str, list[str]] | None = None
    cuda: bool | None = None
    match_threshold: float | None = None
    error: str | None = Field(None, description="Startup failure (verbose only)")


class HealthOut(BaseModel):
    """Liveness from in-process state only: never waits on storage or the index. The Lambdas read it
    with contract/health.py `AppHealth.parse` (its `HealthDocument` fields, pinned by tests/contract)."""

    status: HealthStatus
    ready: bool
    reasons: list[str]
    idle_seconds: float
    jobs_in_progress: int
    auto_shutdown_idle_time: int
    index_pending: int = 0
    limits: Limits
    model: ModelOut
    storage: dict[str, Any] | None = Field(None, description="Storage check (verbose, API key)")
    index: dict[str, Any] | None = Field(None, description="Vector index check (verbose, API key)")


class ReadyOut(BaseModel):
    ready: bool
    reasons: list[str]


class IndexCheckOut(BaseModel):
    ok: bool
    backend: str
    count: int | None
    detail: dict[str, Any]
