"""`face_embedding`: embed every image under a prefix or in a manifest, as a Batch array job."""

from __future__ import annotations

import json
import math
from typing import Any, Final

from botocore.exceptions import ClientError

from lambdas.common.aws import client, is_not_found
from lambdas.common.messages import TriggerMessage
from lambdas.common.validation import (
    InvalidMessageError,
    optional_collection,
    optional_int,
    plain_key,
    readable_key,
    reject_unknown,
)
from lambdas.dispatcher.batch import (
    RESOURCE_FIELDS,
    JobResources,
    job_environment,
    job_name,
    output_prefix,
    submit_job,
)
from lambdas.dispatcher.triggers.base import BaseTrigger, DispatchContext

IMAGE_EXTENSIONS: Final = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
MAX_ARRAY_SIZE: Final = 10_000  # AWS Batch's limit; Batch's minimum array size is 2
MAX_IMAGES_PER_CHILD: Final = 1_000_000
DEFAULT_COLLECTION: Final = "default"
# After the embedding job: one final.parquet, people clustered across the job (gpu_app/batch/materialize.py).
MATERIALIZE_COMMAND: Final = ("python", "-m", "gpu_app.batch", "materialize")


def count_images_under(bucket: str, prefix: str) -> int:
    pages = client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sum(
        1
        for page in pages
        for item in page.get("Contents", [])
        if item["Key"].lower().endswith(IMAGE_EXTENSIONS)
    )


def count_manifest_entries(bucket: str, key: str) -> int:
    """Lines of `{"key": ...}` JSON objects or plain keys; blank lines are skipped. Streamed."""
    try:
        body = client("s3").get_object(Bucket=bucket, Key=key)["Body"]
    except ClientError as exc:
        if is_not_found(exc):
            raise InvalidMessageError(
                f"manifest {key!r} does not exist in s3://{bucket}", "InputNotFound"
            ) from None
        raise
    count = 0
    for number, raw_line in enumerate(body.iter_lines(), start=1):
        line = raw_line.decode("utf-8", "replace").strip()
        if not line:
            continue
        entry_key: Any = line
        if line.startswith("{"):
            try:
                entry = json.loads(line)
            except (ValueError, RecursionError):
                entry = None
            if not isinstance(entry, dict) or not isinstance(entry.get("key"), str) or not entry["key"]:
                raise InvalidMessageError(
                    f"manifest {key!r} line {number} is neither a plain key nor a JSON object with a 'key'",
                    "InvalidManifest",
                )
            entry_key = entry["key"]
        try:  # every line names an object of the input bucket, checked like a key in a message
            plain_key(entry_key, f"manifest {key!r} line {number}: key")
        except InvalidMessageError as error:
            raise InvalidMessageError(error.reason, "InvalidManifest") from None
        count += 1
    return count


class FaceEmbeddingTrigger(BaseTrigger):
    trigger_type = "face_embedding"

    def __init__(self, message: TriggerMessage, context: DispatchContext) -> None:
        super().__init__(message, context)
        data = message.data
        reject_unknown(
            data,
            ("prefix", "manifest_key", "collection", "images_per_child", "materialize", *RESOURCE_FIELDS),
            "data",
        )
        self.materialize = data.get("materialize", True)
        if not isinstance(self.materialize, bool):
            raise InvalidMessageError(f"data.materialize must be true or false, got {self.materialize!r}")
        if ("prefix" in data) == ("manifest_key" in data):
            raise InvalidMessageError("data must have exactly one of 'prefix' or 'manifest_key'")
        self.prefix = plain_key(data["prefix"], "data.prefix", prefix=True) if "prefix" in data else None
        self.manifest_key = (
            readable_key(
                plain_key(data["manifest_key"], "data.manifest_key"),
                "data.manifest_key",
                context.config.input_read_prefixes,
            )
            if "manifest_key" in data
            else None
        )
        self.collection = optional_collection(data, "collection", "data") or DEFAULT_COLLECTION
        self.images_per_child = (
            optional_int(data, "images_per_child", "data", minimum=1, maximum=MAX_IMAGES_PER_CHILD)
            or context.config.images_per_child
        )
        self.resources = JobResources.parse(data, context.config)

    def count_images(self) -> int:
        bucket = self.context.config.ml_input_bucket
        if self.manifest_key is not None:
            return count_manifest_entries(bucket, self.manifest_key)
        return count_images_under(bucket, self.prefix or "")

    def execute(self) -> dict[str, Any]:
        config = self.context.config
        count = self.count_images()
        source = f"manifest {self.manifest_key!r}" if self.manifest_key else f"prefix {self.prefix!r}"
        if count == 0:
            raise InvalidMessageError(f"no images in {source} of s3://{config.ml_input_bucket}", "NoImages")
        children = math.ceil(count / self.images_per_child)
        if children > MAX_ARRAY_SIZE:
            raise InvalidMessageError(
                f"{count} images at {self.images_per_child} per child need {children} children, more than "
                f"Batch's {MAX_ARRAY_SIZE}; raise data.images_per_child"
            )
        name = job_name("embed", self.message.metadata, self.context.idempotency_key)
        source_env = (
            {"MANIFEST_KEY": self.manifest_key} if self.manifest_key else {"INPUT_PREFIX": self.prefix or ""}
        )
        gpu = self.resources.compute_type == "gpu"
        prefix = output_prefix(self.message.metadata, name)
        result = submit_job(
            name=name,
            queue=self.resources.queue(config),
            definition=config.embed_job_definition_gpu if gpu else config.embed_job_definition_cpu,
            resources=self.resources,
            environment=job_environment(
                config,
                self.resources,
                self.message.metadata,
                prefix,
                {
                    "COLLECTION": self.collection,
                    "IMAGE_COUNT": str(count),
                    "IMAGES_PER_CHILD": str(self.images_per_child),
                    **source_env,
                },
            ),
            # One child would be a plain job anyway, and Batch refuses arrays of size 1.
            array_size=children if children >= 2 else None,
        )
        final = self.submit_materialize(prefix, children, result["job_id"]) if self.materialize else None
        return {**result, "image_count": count, "materialize": final}

    def submit_materialize(self, prefix: str, shards: int, embed_job_id: str) -> dict[str, Any]:
        """The merge job on the CPU queue, started by Batch once every embedding child succeeded."""
        config = self.context.config
        resources = JobResources.parse({"compute_type": "cpu"}, config)
        submitted = submit_job(
            name=job_name("materialize", self.message.metadata, self.context.idempotency_key),
            queue=resources.queue(config),
            definition=config.embed_job_definition_cpu,
            resources=resources,
            environment=job_environment(
                config,
                resources,
                self.message.metadata,
                prefix,
                {"COLLECTION": self.collection, "ARRAY_SIZE": str(shards)},
            ),
            command=MATERIALIZE_COMMAND,
            depends_on=embed_job_id,
        )
        return {"job_id": submitted["job_id"], "job_name": submitted["job_name"], "depends_on": embed_job_id}
