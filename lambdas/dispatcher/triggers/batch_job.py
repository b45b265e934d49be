"""`batch_job`: run a script from the input bucket as an AWS Batch job on the GPU or CPU queue."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any, Final

from botocore.exceptions import ClientError

from contract import batch_job
from contract.batch_job import RUNNABLE_SCRIPT_SUFFIXES
from lambdas.common.aws import client, is_not_found
from lambdas.common.messages import TriggerMessage
from lambdas.common.validation import InvalidMessageError, plain_key, readable_key, reject_unknown
from lambdas.dispatcher.batch import (
    RESOURCE_FIELDS,
    JobResources,
    job_environment,
    job_name,
    output_prefix,
    submit_job,
)
from lambdas.dispatcher.triggers.base import BaseTrigger, DispatchContext

# `"operation": "cleanup-cache"` asks to empty a shared EFS model cache, which this deployment does not
# have: the message is answered with what applies here (gpu_app/batch/cache.py).
CLEANUP_CACHE_REPLACED: Final = (
    "data.operation 'cleanup-cache' is not needed in this deployment: it has no EFS model cache. Batch "
    "jobs load the model pack from their container image (or MODELS_S3_URI) onto the job's own disk, "
    "which is freed when the job ends; the GPU instance keeps its copy on its root volume, billed by "
    "size whatever it holds (to empty it anyway, run `python -m gpu_app.batch cleanup-cache` in the "
    "app's container on the instance; the next start fetches the pack again). Nothing was submitted."
)


def require_object(bucket: str, key: str, field: str) -> None:
    """Refuse a message naming a missing object now, rather than as a failed job later."""
    try:
        client("s3").head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if is_not_found(exc):
            raise InvalidMessageError(
                f"{field} {key!r} does not exist in s3://{bucket}", "InputNotFound"
            ) from None
        raise


class BatchJobTrigger(BaseTrigger):
    trigger_type = "batch_job"

    def __init__(self, message: TriggerMessage, context: DispatchContext) -> None:
        super().__init__(message, context)
        data = message.data
        if "operation" in data:
            if data["operation"] == "cleanup-cache":
                raise InvalidMessageError(CLEANUP_CACHE_REPLACED, "UnsupportedOperation")
            raise InvalidMessageError(
                f"data.operation {data['operation']!r} is not supported; a batch_job runs data.script_key",
                "UnsupportedOperation",
            )
        reject_unknown(data, ("script_key", *RESOURCE_FIELDS), "data")
        self.script_key = readable_key(
            plain_key(data.get("script_key"), "data.script_key"),
            "data.script_key",
            context.config.input_read_prefixes,
        )
        # What the script runner runs: anything else would fail in the job after the queue wait.
        if PurePosixPath(self.script_key).suffix not in RUNNABLE_SCRIPT_SUFFIXES:
            raise InvalidMessageError(
                f"data.script_key {self.script_key!r} must end in {' or '.join(RUNNABLE_SCRIPT_SUFFIXES)} "
                "(the script runner runs .py with Python and .sh with bash)"
            )
        self.resources = JobResources.parse(data, context.config)

    def execute(self) -> dict[str, Any]:
        config = self.context.config
        require_object(config.ml_input_bucket, self.script_key, "data.script_key")
        name = job_name(
            PurePosixPath(self.script_key).stem, self.message.metadata, self.context.idempotency_key
        )
        prefix = output_prefix(self.message.metadata, name)
        gpu = self.resources.compute_type == "gpu"
        return submit_job(
            name=name,
            queue=self.resources.queue(config),
            definition=config.script_job_definition_gpu if gpu else config.script_job_definition_cpu,
            resources=self.resources,
            environment=job_environment(
                config, self.resources, self.message.metadata, prefix, {batch_job.SCRIPT_KEY: self.script_key}
            ),
        )
