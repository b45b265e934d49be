"""The dispatcher's typed configuration (lambdas/common/config.py builds it from env.py's
variables). In the function's own folder: each function defines only its own class at import."""

from __future__ import annotations

from typing import NamedTuple

from lambdas.common.aws import client
from lambdas.common.cache import per_container
from lambdas.common.config import load
from lambdas.common.idempotency import IdempotencyStore


class DispatcherConfig(NamedTuple):
    ml_input_bucket: str
    ml_output_bucket: str
    gpu_job_queue: str
    cpu_job_queue: str
    script_job_definition_gpu: str
    script_job_definition_cpu: str
    embed_job_definition_gpu: str
    embed_job_definition_cpu: str
    default_gpu_vcpus: int
    default_gpu_memory: int
    default_gpu_gpus: int
    default_cpu_vcpus: int
    default_cpu_memory: int
    max_vcpus: int
    gpu_compute_max_vcpus: int
    cpu_compute_max_vcpus: int
    max_memory: int
    max_gpus: int
    min_memory: int
    images_per_child: int
    input_read_prefixes: tuple[str, ...]
    s3_event_prefix: str
    event_batch_threshold: int
    video_instance_max_bytes: int
    controller_function_name: str
    idempotency_table: str
    dead_letter_queue_url: str


@per_container
def dispatcher_config() -> DispatcherConfig:
    return load(DispatcherConfig, "dispatcher")


@per_container
def dispatcher_store() -> IdempotencyStore:
    """The idempotency table (IDEMPOTENCY_TABLE) of every record kind, once per container."""
    return IdempotencyStore(dispatcher_config().idempotency_table, client("dynamodb"))
