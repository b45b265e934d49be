"""The bulk face-embedding job: one Batch array child embeds, stores and indexes its shard of images.

Every image goes through `FaceService.process_keys` (read from the input bucket, detect + embed in
one batched call, sidecar under S3_UPLOAD_PATH, upsert into the vector index by deterministic face
id), exactly as the app does. What a long, interruptible job adds lives beside it:

* embed_config.py: what the child is asked to do, checked before the model loads;
* sharding.py: the job's input list, pinned once, and this child's slice of it;
* shard_job.py: chunks, retries of transient failures, checkpoints, resume and the shard's outputs;
* results_table.py: the parquet schema of the face rows.

This module is the entry point: it pins the input list, builds the service (gpu_app/assembly.py)
and runs the child's ShardJob, checkpointing on SIGTERM.

Outputs under s3://ML_OUTPUT_BUCKET/OUTPUT_PREFIX/ (see README.md for the schemas):
  results-<i>.parquet, manifest-<i>.jsonl, summary-<i>.json, and while running
  _checkpoints/results-<i>/part-NNNNN.parquet (removed once results-<i>.parquet is written).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Any

from gpu_app.batch import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, ConfigError
from gpu_app.batch.embed_config import EmbedConfig, job_settings
from gpu_app.batch.shard_job import ShardJob
from gpu_app.batch.sharding import (
    INPUTS_NAME,
    InputItem,
    list_prefix,
    pinned_inputs,
    read_manifest,
    shard_bounds,
)
from gpu_app.config import Settings
from gpu_app.storage import ImageStorage

log = logging.getLogger(__name__)


def input_items(config: EmbedConfig, settings: Settings, storage: ImageStorage) -> list[InputItem]:
    """The whole job's input list, pinned under the output prefix by the first child to run."""
    import boto3

    def list_inputs() -> list[InputItem]:
        if config.manifest_key is not None:
            return read_manifest(storage, config.manifest_key)
        return list_prefix(storage, config.input_prefix or "")

    s3 = boto3.client("s3", region_name=settings.aws_region)
    items = pinned_inputs(s3, config.output_bucket, config.output_key(INPUTS_NAME), list_inputs)
    if config.image_count is not None and config.image_count != len(items):
        log.warning(
            "the dispatcher counted %d images, the input now lists %d: sharding the %d",
            config.image_count,
            len(items),
            len(items),
        )
    return items


def run_embed(config: EmbedConfig, settings: Settings) -> int:
    """Run one shard; returns the process exit code (module docstring and README.md)."""
    from gpu_app.assembly import build_service, gpu_problem
    from gpu_app.engine import load_engine
    from gpu_app.index import IndexMismatchError
    from gpu_app.storage import build_storage
    from gpu_app.storage.s3 import S3Storage

    started = time.monotonic()
    config.validate()
    settings = job_settings(config, settings)
    storage = build_storage(settings)
    outputs = S3Storage(config.output_bucket, region=settings.aws_region, retries=settings.storage_retries)
    items = input_items(config, settings, storage)
    start, stop_at = shard_bounds(len(items), config.array_index, config.array_size)
    mine = items[start:stop_at]
    log.info(
        "shard %d of %d: items [%d, %d) of %d%s",
        config.array_index,
        config.array_size,
        start,
        stop_at,
        len(items),
        f" ({mine[0].key} .. {mine[-1].key})" if mine else "",
    )
    if config.images_per_child and len(mine) > config.images_per_child:
        log.warning(
            "this shard holds %d images, more than IMAGES_PER_CHILD=%d", len(mine), config.images_per_child
        )

    loading = time.monotonic()
    engine = load_engine(settings)
    info = engine.info
    load_seconds = time.monotonic() - loading
    log.info(
        "model pack %s (%d-d) loaded in %.1fs; providers requested %s, applied %s",
        info.model_pack,
        info.embedding_dim,
        load_seconds,
        info.requested_providers,
        info.applied_providers,
    )
    problem = gpu_problem(settings, info)
    if problem:
        raise ConfigError(problem)
    try:
        # The service's pending-index list would die with the container: this job retries instead.
        service = build_service(settings, engine=engine, storage=storage, remember_pending=False)
    except IndexMismatchError as exc:
        raise ConfigError(str(exc)) from None
    index = service.index
    stop = threading.Event()
    previous = _on_sigterm(stop)
    job = ShardJob(config, service, outputs, mine, stop, started=started, model_load_seconds=load_seconds)
    try:
        job.load_checkpoint()
        code = job.run()
    except ConfigError:
        raise
    except Exception:
        log.exception("shard %d failed", config.array_index)
        if job.loaded:
            try:
                job.checkpoint()
            except Exception:
                log.exception("the checkpoint could not be written either")
        return EXIT_FAILED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        service.close()
        index.close()
    if code == EXIT_INTERRUPTED:
        return code
    counts = job.counts()
    log.info(
        "shard %d done: %d images (ok=%d failed=%d retry=%d, %d resumed), %d faces",
        config.array_index,
        len(mine),
        counts["ok"],
        counts["failed"],
        counts["retry"],
        job.skipped,
        len(job.rows),
    )
    if counts["retry"]:
        log.error("exit 1: %d image(s) failed transiently; a re-run resumes them", counts["retry"])
    elif code != EXIT_OK:
        log.error(
            "exit 1: %d of %d images failed, above MAX_FAILED_FRACTION=%s (see the manifest)",
            counts["failed"],
            len(mine),
            config.max_failed_fraction,
        )
    return code


def _on_sigterm(stop: threading.Event) -> Any:
    """Batch sends SIGTERM before SIGKILL (spot reclaim, timeout, cancel): finish the chunk, checkpoint."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: Any) -> None:
        log.warning("SIGTERM: stopping after the current chunk")
        stop.set()

    return signal.signal(signal.SIGTERM, handler)
