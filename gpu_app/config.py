"""Settings from the environment (pydantic-settings), accepting the seed's variable names."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Cosine similarity above which two faces are taken as the same person, per model pack.
# offline_sc (MobileFace V3, 256-d): different people reach 0.53 on the sample set, the same person
# stays above 0.75 (shared/models/.../PROVENANCE.md). buffalo_*: Immich's max distance 0.5.
DEFAULT_MATCH_THRESHOLDS: dict[str, float] = {
    "offline_sc": 0.6,
    "buffalo_l": 0.5,
    "buffalo_m": 0.5,
    "buffalo_s": 0.5,
    "buffalo_sc": 0.5,
    "antelopev2": 0.5,
}
FALLBACK_MATCH_THRESHOLD = 0.5


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", populate_by_name=True)

    # --- HTTP ---------------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address `serve` binds")
    port: int = Field(8000, ge=1, le=65535)
    api_key: SecretStr | None = Field(
        None, description="Required X-API-Key for every route but /health, /ready, /metrics"
    )
    api_key_ssm_parameter: str | None = Field(
        None, description="SSM SecureString (or Secrets Manager secret) holding API_KEY"
    )
    api_key_refresh_seconds: float = Field(
        30.0, gt=0, description="Seconds between re-reads of API_KEY_SSM_PARAMETER (a rotation's delay)"
    )
    public_docs: bool = Field(False, description="Serve /docs, /redoc and /openapi.json without the API key")

    # --- model ---------------------------------------------------------------------------------
    model_root: str = Field("~/.insightface", description="InsightFace model root (holds models/<pack>)")
    model_pack: str = Field("buffalo_l", description="Model pack name under <root>/models")
    models_s3_uri: str | None = Field(
        None, description="s3://bucket/prefix to sync model packs from at start"
    )
    det_size: int = Field(640, ge=160, le=2048, description="SCRFD input size (square)")
    det_threshold: float = Field(0.5, gt=0, lt=1)
    execution_provider: Literal["auto", "cuda", "cpu"] = "auto"
    require_gpu: bool = Field(False, description="Refuse to become ready without CUDA applied")
    rec_batch_size: int = Field(64, ge=1, le=1024, description="Faces per recognition model call")
    intra_op_threads: int = Field(0, ge=0, description="onnxruntime threads per session (0 = cores)")
    match_threshold: float | None = Field(
        None, ge=-1, le=1, description="Cosine similarity for a match (default per model pack)"
    )

    # --- image input ---------------------------------------------------------------------------
    max_upload_bytes: int = Field(25 * 1024 * 1024, ge=1)
    max_files_per_request: int = Field(100, ge=1)
    max_request_bytes: int | None = Field(
        None, ge=1, description="Cap of a multipart body (default: every file at MAX_UPLOAD_BYTES)"
    )
    max_image_pixels: int = Field(40_000_000, ge=1, description="Decompression-bomb guard")
    min_image_side: int = Field(16, ge=1)
    working_image_pixels: int = Field(
        16_000_000,
        ge=1_000_000,
        description="Larger images are decoded reduced (integer factor) to at most this many pixels; "
        "boxes stay in original pixels",
    )
    decode_budget_bytes: int = Field(
        512 * 1024 * 1024,
        ge=64 * 1024 * 1024,
        description="Decoded pixels held at once by the whole process; decodes wait for room",
    )

    # --- storage -------------------------------------------------------------------------------
    storage_backend: Literal["local", "s3"] = "local"
    local_storage_dir: Path = Path("data/images")
    s3_bucket_name: str | None = None
    s3_upload_path: str = "upload_with_embed"
    aws_region: str = Field("us-east-1", validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"))
    storage_retries: int = Field(5, ge=0, description="Retries (with backoff) of a storage write")

    # --- vector index --------------------------------------------------------------------------
    vector_index: Literal["embedded", "elasticsearch"] = "embedded"
    index_dir: Path = Path("data/index")
    index_name: str = "face_embeddings"
    es_hosts: str | None = Field(None, validation_alias=AliasChoices("ES_HOSTS", "ES_HOSTS1"))

    # --- background work -----------------------------------------------------------------------
    job_workers: int = Field(2, ge=1, description="Async upload jobs processed at once")
    job_queue_size: int = Field(16, ge=1, description="Async jobs waiting; beyond it the API answers 429")
    job_spool_dir: Path = Path("data/spool")
    job_retry_delay: float = Field(1.0, gt=0, description="First backoff (s) when storage is down in a job")
    job_retry_max_delay: float = Field(
        60.0, gt=0, description="Longest backoff (s) between retries of pending job files (no try limit)"
    )
    auto_shutdown_idle_time: int = Field(3600, ge=0, description="Idle seconds before the stopper acts")

    # --- people (faces grouped into identities) ------------------------------------------------
    people_threshold: float | None = Field(
        None,
        ge=-1,
        le=1,
        description="Cosine similarity for a face to join a person (default: the match threshold)",
    )
    people_min_faces: int = Field(
        3, ge=1, description="Similar unassigned faces needed before they form a new person"
    )
    face_thumbnails: bool = Field(
        True, description="Store a small JPEG crop of every face at ingest (costs a second decode)"
    )

    @field_validator("s3_upload_path")
    @classmethod
    def _strip_slashes(cls, value: str) -> str:
        return value.strip("/")

    @cached_property
    def model_root_path(self) -> Path:
        return Path(self.model_root).expanduser()

    @property
    def effective_people_threshold(self) -> float:
        return self.effective_match_threshold if self.people_threshold is None else self.people_threshold

    @property
    def effective_match_threshold(self) -> float:
        if self.match_threshold is not None:
            return self.match_threshold
        return DEFAULT_MATCH_THRESHOLDS.get(self.model_pack, FALLBACK_MATCH_THRESHOLD)
