"""Submitting AWS Batch jobs: resources, names, output prefix and environment, shared by the triggers."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any, Final, Literal, NamedTuple

from contract import batch_job
from lambdas.common.aws import client, region
from lambdas.common.controller_request import Metadata
from lambdas.common.validation import InvalidMessageError, optional_int
from lambdas.dispatcher.config import DispatcherConfig

ComputeType = Literal["gpu", "cpu"]
RESOURCE_FIELDS: Final = ("compute_type", "vcpus", "memory", "gpus")
MAX_JOB_NAME: Final = 128
_NOT_IN_JOB_NAME = re.compile(r"[^A-Za-z0-9_-]+")


class JobResources(NamedTuple):
    compute_type: ComputeType
    vcpus: int
    memory: int  # MiB
    gpus: int  # 0 on the CPU queue

    @classmethod
    def parse(cls, data: Mapping[str, Any], config: DispatcherConfig) -> JobResources:
        """Per-job overrides checked against the configured maxima; defaults per compute type."""
        compute_type = data.get("compute_type", "gpu")
        if compute_type not in ("gpu", "cpu"):
            raise InvalidMessageError(f"data.compute_type must be 'gpu' or 'cpu', got {compute_type!r}")
        gpu = compute_type == "gpu"
        vcpus = optional_int(data, "vcpus", "data", minimum=1, maximum=config.max_vcpus)
        memory = optional_int(data, "memory", "data", minimum=config.min_memory, maximum=config.max_memory)
        if gpu:
            gpus = optional_int(data, "gpus", "data", minimum=1, maximum=config.max_gpus)
        elif data.get("gpus") not in (None, 0):
            raise InvalidMessageError("data.gpus applies only to compute_type 'gpu'")
        else:
            gpus = 0
        resources = cls(
            compute_type="gpu" if gpu else "cpu",
            vcpus=vcpus or (config.default_gpu_vcpus if gpu else config.default_cpu_vcpus),
            memory=memory or (config.default_gpu_memory if gpu else config.default_cpu_memory),
            gpus=(gpus or config.default_gpu_gpus) if gpu else 0,
        )
        # Batch accepts a job larger than its compute environment, which then waits RUNNABLE until
        # its queue's time limit cancels it: refuse it now, with the number it must fit in.
        limit_name = "GPU_COMPUTE_MAX_VCPUS" if gpu else "CPU_COMPUTE_MAX_VCPUS"
        limit = config.gpu_compute_max_vcpus if gpu else config.cpu_compute_max_vcpus
        if resources.vcpus > limit:
            asked = f"data.vcpus={vcpus}" if vcpus else f"the default of {resources.vcpus} vCPUs"
            raise InvalidMessageError(
                f"{asked} is more than the {compute_type} compute environment can ever run "
                f"({limit_name}={limit}); the job would wait RUNNABLE until cancelled: "
                f"ask for at most {limit}"
            )
        return resources

    def resource_requirements(self) -> list[dict[str, str]]:
        requirements = [
            {"type": "VCPU", "value": str(self.vcpus)},
            {"type": "MEMORY", "value": str(self.memory)},
        ]
        if self.gpus:
            requirements.append({"type": "GPU", "value": str(self.gpus)})
        return requirements

    def queue(self, config: DispatcherConfig) -> str:
        return config.gpu_job_queue if self.compute_type == "gpu" else config.cpu_job_queue


def sanitize_job_name(text: str) -> str:
    """Batch's rule: up to 128 letters, digits, '-' and '_', starting with a letter or digit."""
    name = _NOT_IN_JOB_NAME.sub("-", text).lstrip("-_")[:MAX_JOB_NAME].rstrip("-_")
    return name or "job"


def job_name(label: str, metadata: Metadata, idempotency_key: str) -> str:
    """Readable and unique: the label and metadata, then a digest of the idempotency key."""
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:12]
    stem = sanitize_job_name(f"{label}-{metadata.project}-{metadata.experiment}")
    return f"{stem[: MAX_JOB_NAME - len(digest) - 1]}-{digest}"


def output_prefix(metadata: Metadata, name: str) -> str:
    """Unique per job because the job name is; S3-safe because job names are."""
    return f"jobs/{sanitize_job_name(metadata.project)}/{sanitize_job_name(metadata.experiment)}/{name}/"


def job_environment(
    config: DispatcherConfig,
    resources: JobResources,
    metadata: Metadata,
    prefix: str,
    extra: Mapping[str, str],
) -> dict[str, str]:
    """The variables every job receives (contract/batch_job.py COMMON), then the trigger's own."""
    return {
        batch_job.ML_INPUT_BUCKET: config.ml_input_bucket,
        batch_job.ML_OUTPUT_BUCKET: config.ml_output_bucket,
        batch_job.OUTPUT_PREFIX: prefix,
        batch_job.COMPUTE_TYPE: resources.compute_type,
        batch_job.TRIGGER_USER: metadata.user,
        batch_job.TRIGGER_PROJECT: metadata.project,
        batch_job.TRIGGER_EXPERIMENT: metadata.experiment,
        batch_job.AWS_DEFAULT_REGION: region(),
        **extra,
    }


def submit_job(
    *,
    name: str,
    queue: str,
    definition: str,
    resources: JobResources,
    environment: Mapping[str, str],
    array_size: int | None = None,
    command: tuple[str, ...] | None = None,
    depends_on: str | None = None,
) -> dict[str, Any]:
    """SubmitJob with container overrides; an array job when `array_size` is given; `command`
    replaces the definition's (one job image runs several entry points); `depends_on` (a job id,
    an array job's parent id included) starts this job only once that job succeeded."""
    request: dict[str, Any] = {
        "jobName": name,
        "jobQueue": queue,
        "jobDefinition": definition,
        "containerOverrides": {
            "resourceRequirements": resources.resource_requirements(),
            "environment": [{"name": key, "value": value} for key, value in environment.items()],
        },
    }
    if command is not None:
        request["containerOverrides"]["command"] = list(command)
    if array_size is not None:
        request["arrayProperties"] = {"size": array_size}
    if depends_on is not None:
        # No type: a dependency on an array job waits for every child (Batch fails this job if any fails).
        request["dependsOn"] = [{"jobId": depends_on}]
    response = client("batch").submit_job(**request)
    return {
        "job_id": response["jobId"],
        "job_name": response["jobName"],
        "job_arn": response.get("jobArn", ""),
        "job_queue": queue,
        "job_definition": definition,
        "compute_type": resources.compute_type,
        "output_prefix": environment.get(batch_job.OUTPUT_PREFIX, ""),
        "array_size": array_size,
    }
