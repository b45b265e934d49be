"""The environment each Lambda function reads: the one source of truth.

Terraform's lambda module sets exactly these variables (tests/terraform checks it), the local
stack (`make run`) sets the same, and the handlers read them only through `lambdas.common.config`.
Values are the defaults a handler falls back to when the variable is unset (None = required).
"""

from __future__ import annotations

from typing import Final

# Shared by every function.
COMMON: Final[dict[str, str | None]] = {
    "POWERTOOLS_SERVICE_NAME": None,
    "POWERTOOLS_LOG_LEVEL": "INFO",
}

DISPATCHER: Final[dict[str, str | None]] = {
    "ML_INPUT_BUCKET": None,
    "ML_OUTPUT_BUCKET": None,
    "GPU_JOB_QUEUE": None,
    "CPU_JOB_QUEUE": None,
    "SCRIPT_JOB_DEFINITION_GPU": None,
    "SCRIPT_JOB_DEFINITION_CPU": None,
    "EMBED_JOB_DEFINITION_GPU": None,
    "EMBED_JOB_DEFINITION_CPU": None,
    "DEFAULT_GPU_VCPUS": "4",
    "DEFAULT_GPU_MEMORY": "16384",
    "DEFAULT_GPU_GPUS": "1",
    "DEFAULT_CPU_VCPUS": "2",
    "DEFAULT_CPU_MEMORY": "4096",
    "MAX_VCPUS": "96",
    # The compute environments' maxvCpus (Terraform: modules/batch gpu_max_vcpus/cpu_max_vcpus): a job
    # asking for more would wait RUNNABLE for ever, so the dispatcher refuses it up front.
    "GPU_COMPUTE_MAX_VCPUS": "16",
    "CPU_COMPUTE_MAX_VCPUS": "32",
    "MAX_MEMORY": "393216",
    "MAX_GPUS": "8",
    "MIN_MEMORY": "512",
    "IMAGES_PER_CHILD": "1000",
    # Comma-separated key prefixes whose objects the dispatcher may read (Terraform:
    # dispatcher_read_prefixes, which also scopes its s3:GetObject); empty: any key.
    "INPUT_READ_PREFIXES": "",
    # S3 event notifications (Terraform: s3_event_filter_prefix): objects outside it are refused.
    "S3_EVENT_PREFIX": "incoming/",
    # Images of one delivery above this count go to a face_embedding Batch job, not the GPU instance.
    "EVENT_BATCH_THRESHOLD": "200",
    # Videos up to this size go to the GPU instance (POST /videos); larger ones to a Batch video job.
    "VIDEO_INSTANCE_MAX_BYTES": "209715200",
    "CONTROLLER_FUNCTION_NAME": None,
    "IDEMPOTENCY_TABLE": None,
    "DEAD_LETTER_QUEUE_URL": None,
}

CONTROLLER: Final[dict[str, str | None]] = {
    "GPU_INSTANCE_ID": None,
    "APP_PORT": "8000",
    # Local stack only: the URL of the app that stands in for the instance (empty in AWS).
    "APP_URL_OVERRIDE": "",
    "API_KEY_PARAMETER": None,
    "START_TIMEOUT_SECONDS": "300",
    "HEALTH_TIMEOUT_SECONDS": "600",
    "NOTIFICATIONS_TOPIC_ARN": None,
    "FALLBACK_INSTANCE_TYPES": "",
}

MONITOR: Final[dict[str, str | None]] = {
    "NOTIFICATIONS_TOPIC_ARN": None,
}

IDLE_STOPPER: Final[dict[str, str | None]] = {
    "GPU_INSTANCE_ID": None,
    "APP_PORT": "8000",
    "APP_URL_OVERRIDE": "",
    "AUTO_SHUTDOWN_IDLE_TIME": "3600",
    "UNREACHABLE_GRACE_SECONDS": "900",
    "NOTIFICATIONS_TOPIC_ARN": None,
}

FUNCTION_ENVIRONMENT: Final[dict[str, dict[str, str | None]]] = {
    "dispatcher": COMMON | DISPATCHER,
    "controller": COMMON | CONTROLLER,
    "monitor": COMMON | MONITOR,
    "idle_stopper": COMMON | IDLE_STOPPER,
}
