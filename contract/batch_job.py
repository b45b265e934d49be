"""AWS Batch jobs of the app's image (`python -m gpu_app.batch ...`) as the dispatcher submits them:
the environment variables it sets and each command reads, the scripts it may run, the exit codes.

The dispatcher (lambdas/dispatcher) sets `COMMON` on every job plus the command's own names; the job
(gpu_app/batch/__main__.py) reads them. `LABELS` are set for people and other readers (the monitor's
notifications, a script's own code), not read by the job's command.
"""

from __future__ import annotations

from typing import Final

# --- every job -------------------------------------------------------------------------------------
ML_INPUT_BUCKET: Final = "ML_INPUT_BUCKET"
ML_OUTPUT_BUCKET: Final = "ML_OUTPUT_BUCKET"
OUTPUT_PREFIX: Final = "OUTPUT_PREFIX"  # unique per job: outputs go under it
AWS_DEFAULT_REGION: Final = "AWS_DEFAULT_REGION"  # read by the AWS SDK in the job
COMPUTE_TYPE: Final = "COMPUTE_TYPE"  # "gpu" or "cpu"
TRIGGER_USER: Final = "TRIGGER_USER"
TRIGGER_PROJECT: Final = "TRIGGER_PROJECT"
TRIGGER_EXPERIMENT: Final = "TRIGGER_EXPERIMENT"

# --- embed -----------------------------------------------------------------------------------------
INPUT_PREFIX: Final = "INPUT_PREFIX"  # embed every image under it, or
MANIFEST_KEY: Final = "MANIFEST_KEY"  # the images a manifest lists (contract.manifest)
COLLECTION: Final = "COLLECTION"
IMAGE_COUNT: Final = "IMAGE_COUNT"  # images the dispatcher counted (the array was sized by it)
IMAGES_PER_CHILD: Final = "IMAGES_PER_CHILD"
# Set by AWS Batch itself on array children.
ARRAY_INDEX: Final = "AWS_BATCH_JOB_ARRAY_INDEX"
ARRAY_SIZE_OF_CHILD: Final = "AWS_BATCH_JOB_ARRAY_SIZE"

# --- materialize -----------------------------------------------------------------------------------
ARRAY_SIZE: Final = "ARRAY_SIZE"  # shards the embed job had

# --- run-script ------------------------------------------------------------------------------------
SCRIPT_KEY: Final = "SCRIPT_KEY"

# --- video -----------------------------------------------------------------------------------------
VIDEO_KEY: Final = "VIDEO_KEY"
VIDEO_BYTES: Final = "VIDEO_BYTES"  # the video's size, a label

COMMON: Final = frozenset(
    {
        ML_INPUT_BUCKET,
        ML_OUTPUT_BUCKET,
        OUTPUT_PREFIX,
        AWS_DEFAULT_REGION,
        COMPUTE_TYPE,
        TRIGGER_USER,
        TRIGGER_PROJECT,
        TRIGGER_EXPERIMENT,
    }
)
# Set on every job for whoever reads it; no command's behaviour depends on them.
LABELS: Final = frozenset(
    {AWS_DEFAULT_REGION, COMPUTE_TYPE, TRIGGER_USER, TRIGGER_PROJECT, TRIGGER_EXPERIMENT, VIDEO_BYTES}
)
# What the dispatcher sets per command, besides COMMON.
COMMAND_ENVIRONMENT: Final[dict[str, frozenset[str]]] = {
    "embed": frozenset({INPUT_PREFIX, MANIFEST_KEY, COLLECTION, IMAGE_COUNT, IMAGES_PER_CHILD}),
    "materialize": frozenset({ARRAY_SIZE}),
    "run-script": frozenset({SCRIPT_KEY}),
    "video": frozenset({VIDEO_KEY, VIDEO_BYTES}),
}

# The scripts `run-script` runs: .py with the job's Python, .sh with bash.
RUNNABLE_SCRIPT_SUFFIXES: Final = (".py", ".sh")

# Exit codes of every command.
EXIT_OK: Final = 0
EXIT_FAILED: Final = 1  # work failed (images over the tolerance, a crash, outputs not uploaded)
EXIT_CONFIG: Final = 2  # the job is misconfigured (ConfigError): retrying the same job cannot help
EXIT_INTERRUPTED: Final = 143  # 128 + SIGTERM: stopped by Batch after a checkpoint, resumable
