"""Images in S3 (or any S3 API such as moto), with botocore's retries for outages."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from gpu_app.storage.base import ObjectNotFoundError, StorageError, validate_key


class S3Storage:
    backend = "s3"

    def __init__(self, bucket: str, *, region: str | None = None, retries: int = 5) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        # "standard" mode retries throttling, 5xx and connection errors with jittered backoff;
        # AWS_ENDPOINT_URL (moto, the local stack) is honoured by boto3 itself.
        config = Config(
            retries={"mode": "standard", "total_max_attempts": retries + 1},
            connect_timeout=5,
            read_timeout=30,
            max_pool_connections=32,
        )
        self._s3 = boto3.client("s3", region_name=region, config=config)
        # Probes answer in seconds: one attempt, short timeouts (the data client waits 30 s a try).
        probe_config = Config(retries={"total_max_attempts": 1}, connect_timeout=2, read_timeout=2)
        self._probe = boto3.client("s3", region_name=region, config=probe_config)
        from botocore.exceptions import BotoCoreError, ClientError

        self._errors = (BotoCoreError, ClientError)

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        try:
            self._s3.put_object(
                Bucket=self.bucket, Key=validate_key(key), Body=data, ContentType=content_type
            )
        except self._errors as exc:
            raise StorageError(f"could not write s3://{self.bucket}/{key}: {exc}") from exc

    def get(self, key: str) -> bytes:
        try:
            return bytes(self._s3.get_object(Bucket=self.bucket, Key=validate_key(key))["Body"].read())
        except self._errors as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if code in {"NoSuchKey", "404", "NotFound"}:
                raise ObjectNotFoundError(key) from None
            raise StorageError(f"could not read s3://{self.bucket}/{key}: {exc}") from exc

    def delete(self, key: str) -> None:
        try:
            self._s3.delete_object(Bucket=self.bucket, Key=validate_key(key))
        except self._errors as exc:
            raise StorageError(f"could not delete s3://{self.bucket}/{key}: {exc}") from exc

    def list(self, prefix: str) -> Iterator[str]:
        try:
            for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield item["Key"]
        except self._errors as exc:
            raise StorageError(f"could not list s3://{self.bucket}/{prefix}: {exc}") from exc

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def health(self) -> dict[str, Any]:
        try:
            self._probe.head_bucket(Bucket=self.bucket)
            return {"ok": True, "backend": self.backend, "bucket": self.bucket}
        except self._errors as exc:
            return {"ok": False, "backend": self.backend, "bucket": self.bucket, "error": str(exc)}
