"""`batch_job`: run a script from the input bucket as an AWS Batch job on the GPU or CPU queue."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from botocore.exceptions import ClientError

from lambdas.common.aws import client, is_not_found
from lambdas.common.models import TriggerMessage
from lambdas.common.validation import InvalidMessageError, plain_key, reject_unknown
from lambdas.dispatcher.batch import (
    RESOURCE_FIELDS,
    JobResources,
    job_environment,
    job_name,
    output_prefix,
    submit_job,
)
from lambdas.dispatcher.triggers.base import BaseTrigger, DispatchContext


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
        reject_unknown(data, ("script_key", *RESOURCE_FIELDS), "data")
        self.script_key = plain_key(data.get("script_key"), "data.script_key")
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
                config, self.resources, self.message.metadata, prefix, {"SCRIPT_KEY": self.script_key}
            ),
        )
