"""The app's one settings object, from the environment (pydantic-settings), under the flat
variable names Terraform's job definitions and the Dockerfiles set: `Settings` covers the server,
the CLI, the Batch jobs and the Elasticsearch index.

Sections are models of their own (`ElasticsearchSettings`, `BatchJobSettings`) that `Settings`
inherits, so their variables keep flat names (ES_HOSTS, BATCH_SIZE) and a component can take just
its section (ElasticsearchIndex takes an ElasticsearchSettings; tests build one alone). Nothing else
in gpu_app/ reads the environment. README.md's configuration tables are checked against these
fields (tests/gpu_app/test_settings_docs.py). The Lambdas keep their own dependency-free config
(lambdas/common/config.py): pydantic at a Lambda's cold start would cost more than it reads.
"""

from __future__ import annotations

import math
import re
import urllib.parse
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contract.limits import MAX_FILES_PER_REQUEST
from contract.names import DEFAULT_COLLECTION

# Cosine similarity above which two faces are taken as the same person, per model pack.
# offline_sc (MobileFace V3, 256-d): different people reach 0.53 on the sample set, the same person
# stays above 0.75 (the pack's PROVENANCE.md under MODEL_ROOT). buffalo_*: Immich's max distance 0.5.
DEFAULT_MATCH_THRESHOLDS: dict[str, float] = {
    "offline_sc": 0.6,
    "buffalo_l": 0.5,
    "buffalo_m": 0.5,
    "buffalo_s": 0.5,
    "buffalo_sc": 0.5,
    "antelopev2": 0.5,
}
FALLBACK_MATCH_THRESHOLD = 0.5
MAX_NUM_CANDIDATES = 10_000  # Elasticsearch's upper bound for knn num_candidates (and so for k)
_INDEX_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
IndexOptionsType = Literal["hnsw", "int8_hnsw", "int4_hnsw", "bbq_hnsw"]
DEFAULT_SCRIPT_OUTPUT_DIR = "/workspace/output"


class ElasticsearchSettings(BaseModel):
    """Connection and index options of VECTOR_INDEX=elasticsearch (see gpu_app/index/README.md)."""

    model_config = ConfigDict(populate_by_name=True)

    # --- connection ----------------------------------------------------------------------------
    es_hosts: str | None = Field(
        None,
        validation_alias=AliasChoices("ES_HOSTS", "ES_HOSTS1"),
        description="Comma-separated node URLs, e.g. https://es1:9200,https://es2:9200",
    )
    es_cloud_id: str | None = Field(None, description="Elastic Cloud deployment id (instead of ES_HOSTS)")
    es_api_key: SecretStr | None = Field(None, description="Encoded API key, or `id:api_key`")
    es_username: str | None = None
    es_password: SecretStr | None = None
    es_secret_name: str | None = Field(
        None,
        description="SSM parameter name or Secrets Manager reference (secretsmanager:<id> or ARN) holding "
        'JSON {"api_key": ...} or {"username": ..., "password": ...}, optionally with "cloud_id"',
    )
    # Where ES_SECRET_NAME is read; `Settings` gives it its default.
    aws_region: str | None = Field(None, validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"))
    es_verify_certs: bool = True
    es_ca_certs: Path | None = Field(None, description="PEM CA bundle for a private CA")
    es_request_timeout: float = Field(30.0, gt=0, description="Seconds per HTTP request")
    es_max_retries: int = Field(3, ge=0, le=10, description="Retries of a transient failure, with backoff")
    es_retry_backoff: float = Field(0.5, gt=0, description="First backoff in seconds (doubles per retry)")
    es_retry_max_backoff: float = Field(10.0, gt=0)

    # --- index ---------------------------------------------------------------------------------
    index_name: str = "face_embeddings"
    es_similarity: Literal["dot_product", "cosine"] = "dot_product"
    es_index_options_type: IndexOptionsType = "int8_hnsw"
    es_hnsw_m: int = Field(16, ge=2, le=512)
    es_hnsw_ef_construction: int = Field(100, ge=2, le=3000)
    es_shards: int | None = Field(None, ge=1)
    es_replicas: int | None = Field(None, ge=0)

    # --- reads and writes ----------------------------------------------------------------------
    es_num_candidates_factor: float = Field(10.0, ge=1.0, description="num_candidates = factor * k")
    es_refresh: Literal["false", "true", "wait_for"] = "false"
    es_chunk_size: int = Field(500, ge=1, le=10_000, description="Documents per bulk request")

    @field_validator("es_refresh", mode="before")
    @classmethod
    def _lower_refresh(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("index_name")
    @classmethod
    def _check_index_name(cls, value: str) -> str:
        if not _INDEX_NAME_RE.fullmatch(value) or len(value.encode()) > 255:
            raise ValueError(f"invalid Elasticsearch index name {value!r} (lowercase letters, digits, . _ -)")
        return value

    @field_validator("es_hosts")
    @classmethod
    def _check_hosts(cls, value: str | None) -> str | None:
        if value is None:
            return None
        for host in split_hosts(value):
            if "@" in urllib.parse.urlsplit(host if "://" in host else f"//{host}").netloc:
                # Credentials in a URL end up in logs and error messages; they have their own settings.
                raise ValueError(
                    "ES_HOSTS must not embed credentials: use ES_USERNAME/ES_PASSWORD or ES_API_KEY"
                )
        return value

    @property
    def hosts(self) -> list[str]:
        return split_hosts(self.es_hosts or "")

    @property
    def refresh(self) -> bool | str:
        """The `refresh` request parameter for writes."""
        policies: dict[str, bool | str] = {"false": False, "true": True, "wait_for": "wait_for"}
        return policies[self.es_refresh]

    def num_candidates(self, k: int) -> int:
        return min(MAX_NUM_CANDIDATES, max(k, math.ceil(self.es_num_candidates_factor * k)))


def split_hosts(value: str) -> list[str]:
    return [host.strip() for host in value.split(",") if host.strip()]


class BatchJobSettings(BaseModel):
    """What `python -m gpu_app.batch` commands read: the dispatcher's variables (contract/batch_job.py),
    AWS Batch's own, and the jobs' tuning. Flags override them (gpu_app/batch/README.md)."""

    model_config = ConfigDict(populate_by_name=True)

    ml_input_bucket: str | None = Field(None, description="Input bucket: images, manifests, scripts, videos")
    ml_output_bucket: str | None = Field(None, description="Output bucket of the jobs")
    output_prefix: str | None = Field(None, description="A job's outputs go under it (unique per job)")
    input_prefix: str | None = Field(None, description="embed: every image under it ('' = whole bucket)")
    manifest_key: str | None = Field(None, description="embed: the images a manifest lists")
    collection: str = Field(DEFAULT_COLLECTION, description="embed, video: collection of the indexed faces")
    aws_batch_job_array_index: int | None = Field(None, ge=0, description="Set by AWS Batch: this child")
    aws_batch_job_array_size: int | None = Field(None, ge=1, description="Set by AWS Batch: the children")
    aws_batch_job_id: str | None = Field(None, description="Set by AWS Batch; recorded in job summaries")
    aws_batch_job_attempt: str | None = Field(None, description="Set by AWS Batch; recorded in summaries")
    batch_size: int = Field(32, description="embed: images per FaceService call")
    checkpoint_every: int = Field(100, description="embed: images between checkpoints")
    max_failed_fraction: float = Field(0.01, description="embed: bad images tolerated before exit 1")
    chunk_retries: int = Field(3, description="embed: retries of transient failures per chunk")
    retry_backoff: float = Field(2.0, description="embed: seconds before the first retry, doubled per retry")
    image_count: int | None = Field(None, description="embed: images the dispatcher counted")
    images_per_child: int | None = Field(None, description="embed: the dispatcher's images per child")
    array_size: int | None = Field(None, description="materialize: shards the embed job had")
    script_key: str | None = Field(None, description="run-script: the script in the input bucket")
    output_dir: Path = Field(
        Path(DEFAULT_SCRIPT_OUTPUT_DIR), description="run-script: uploaded after the run"
    )
    workspace_dir: Path | None = Field(None, description="run-script: working directory (default: temporary)")
    video_key: str | None = Field(None, description="video: the video in the input bucket")
    video_sample_rate: float = Field(2.0, description="video: frames analysed per second")
    video_segment_seconds: float = Field(60.0, description="video: a checkpoint per this many seconds")
    video_max_seconds: float = Field(4 * 3600.0, description="video: longest video accepted")
    model_cache_dir: Path | None = Field(None, description="cleanup-cache: the cache (default: MODEL_ROOT)")

    @field_validator(
        "manifest_key",
        "aws_batch_job_array_index",
        "aws_batch_job_array_size",
        "image_count",
        "images_per_child",
        "array_size",
        "workspace_dir",
        "model_cache_dir",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        """A variable set to "" is unset (Batch job definitions and shells write them so)."""
        return None if isinstance(value, str) and not value.strip() else value


class Settings(ElasticsearchSettings, BatchJobSettings, BaseSettings):
    """Every setting of the app, its CLI and its Batch jobs, from the environment."""

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
    # Published in /health; the instance controller splits its work by it (contract/limits.py).
    max_files_per_request: int = Field(MAX_FILES_PER_REQUEST, ge=1)
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
    # INDEX_NAME, ES_HOSTS and the other ES_* settings: ElasticsearchSettings above.

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
