"""Image storage backends. `build_storage(settings)` builds the configured one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gpu_app.storage.base import (
    SIDECAR_SUFFIX,
    ImageStorage,
    InvalidKeyError,
    ObjectNotFoundError,
    StorageError,
    sanitize_filename,
    validate_key,
)

if TYPE_CHECKING:
    from gpu_app.config import Settings

__all__ = [
    "SIDECAR_SUFFIX",
    "ImageStorage",
    "InvalidKeyError",
    "ObjectNotFoundError",
    "StorageError",
    "build_storage",
    "sanitize_filename",
    "validate_key",
]


def build_storage(settings: Settings) -> ImageStorage:
    if settings.storage_backend == "s3":
        if not settings.s3_bucket_name:
            raise ValueError("STORAGE_BACKEND=s3 needs S3_BUCKET_NAME")
        from gpu_app.storage.s3 import S3Storage

        return S3Storage(
            settings.s3_bucket_name, region=settings.aws_region, retries=settings.storage_retries
        )
    from gpu_app.storage.local import LocalStorage

    return LocalStorage(settings.local_storage_dir)
