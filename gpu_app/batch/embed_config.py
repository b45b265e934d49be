"""What one `embed` array child is asked to do (flags over BatchJobSettings, see __main__.py), checked
before any model loads, and the app settings it runs the service with."""

from __future__ import annotations

from dataclasses import dataclass

from contract.names import DEFAULT_COLLECTION
from gpu_app.batch import ConfigError, output_key, require, require_collection
from gpu_app.batch.sharding import shard_bounds
from gpu_app.config import Settings


@dataclass(frozen=True, slots=True)
class EmbedConfig:
    input_bucket: str
    output_bucket: str
    output_prefix: str
    input_prefix: str | None = None
    manifest_key: str | None = None
    collection: str = DEFAULT_COLLECTION
    array_index: int = 0
    array_size: int = 1
    batch_size: int = 32
    checkpoint_every: int = 100
    max_failed_fraction: float = 0.01
    retries: int = 3
    retry_backoff: float = 2.0
    image_count: int | None = None  # what the dispatcher counted, for a consistency warning
    images_per_child: int | None = None
    job_id: str | None = None  # AWS Batch's, recorded in the summary
    job_attempt: str | None = None

    def validate(self) -> None:
        require(
            [
                ("ML_INPUT_BUCKET", "--input-bucket", self.input_bucket),
                ("ML_OUTPUT_BUCKET", "--output-bucket", self.output_bucket),
                ("OUTPUT_PREFIX", "--output-prefix", self.output_prefix.strip("/")),
            ]
        )
        if (self.input_prefix is None) == (self.manifest_key is None):
            raise ConfigError(
                "set exactly one of INPUT_PREFIX (--input-prefix) or MANIFEST_KEY (--manifest-key)"
            )
        shard_bounds(0, self.array_index, self.array_size)
        for name, value, low in (
            ("BATCH_SIZE", self.batch_size, 1),
            ("CHECKPOINT_EVERY", self.checkpoint_every, 1),
        ):
            if value < low:
                raise ConfigError(f"{name} must be at least {low}, got {value}")
        if not 0.0 <= self.max_failed_fraction <= 1.0:
            raise ConfigError(f"MAX_FAILED_FRACTION must be within 0..1, got {self.max_failed_fraction}")
        if self.retries < 0 or self.retry_backoff < 0:
            raise ConfigError("CHUNK_RETRIES and RETRY_BACKOFF must not be negative")
        require_collection(self.collection)

    def output_key(self, name: str) -> str:
        return output_key(self.output_prefix, name)


def job_settings(config: EmbedConfig, settings: Settings) -> Settings:
    """The app's settings with storage pinned to the input bucket.

    Sidecars go where the app writes them (same bucket, S3_UPLOAD_PATH), so `python -m gpu_app
    reindex` sees every image whichever path embedded it.
    """
    explicit = settings.s3_bucket_name
    if explicit and explicit != config.input_bucket:
        raise ConfigError(
            f"S3_BUCKET_NAME={explicit} differs from ML_INPUT_BUCKET={config.input_bucket}: the job reads "
            "images and writes their sidecars in one bucket; unset S3_BUCKET_NAME or make them equal"
        )
    return settings.model_copy(update={"storage_backend": "s3", "s3_bucket_name": config.input_bucket})
