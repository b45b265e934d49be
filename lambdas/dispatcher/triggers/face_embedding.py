"""`face_embedding`: embed every image under a prefix or in a manifest, as a Batch array job."""

from __future__ import annotations

import math
from typing import Any, Final

from botocore.exceptions import ClientError

from contract import batch_job
from contract.media import is_image_key
from contract.names import DEFAULT_COLLECTION
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

MAX_ARRAY_SIZE: Final = 10_000  # AWS Batch's limit; Batch's minimum array size is 2
MAX_IMAGES_PER_CHILD: Final = 1_000_000
# After the embedding job: one final.parquet, people clustered across the job (gpu_app/batch/materialize.py).
MATERIALIZE_COMMAND: Final = ("python", "-m", "gpu_app.batch", "materialize")


def count_images_under(bucket: str, prefix: str) -> int:
    pages = client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    # The images the embedding job's children list (gpu_app/batch/sharding.py, the same contract rule).
    return sum(1 for page in pages for item in page.get("Contents", []) if is_image_key(item["Key"]))


def count_manifest_entries(bucket: str, key: str) -> int:
    """The images a manifest lists, as the embedding job's children will read it (contract/manifest.py:
    a key listed twice is one image), each key checked like a key in a message. Streamed."""
    # Imported here: only manifest messages read one, and its parser's class costs ~0.6 ms of every
    # cold start (issue 18 goal 4).
    from contract.manifest import ManifestError, iter_manifest

    try:
        body = client("s3").get_object(Bucket=bucket, Key=key)["Body"]
    except ClientError as exc:
        if is_not_found(exc):
            raise InvalidMessageError(
                f"manifest {key!r} does not exist in s3://{bucket}", "InputNotFound"
            ) from None
        raise
    lines = (raw.decode("utf-8", "replace") for raw in body.iter_lines())
    count = 0
    try:
        for entry in iter_manifest(lines, f"manifest {key!r}"):
            plain_key(entry.key, f"manifest {key!r} line {entry.line}: key")
            count += 1
    except (ManifestError, InvalidMessageError) as error:
        raise InvalidMessageError(str(error), "InvalidManifest") from None
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
            {batch_job.MANIFEST_KEY: self.manifest_key}
            if self.manifest_key
            else {batch_job.INPUT_PREFIX: self.prefix or ""}
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
                    batch_job.COLLECTION: self.collection,
                    batch_job.IMAGE_COUNT: str(count),
                    batch_job.IMAGES_PER_CHILD: str(self.images_per_child),
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
                {batch_job.ARRAY_SIZE: str(shards)},  # it merges the shards; their rows carry the collection
            ),
            command=MATERIALIZE_COMMAND,
            depends_on=embed_job_id,
        )
        return {"job_id": submitted["job_id"], "job_name": submitted["job_name"], "depends_on": embed_job_id}
