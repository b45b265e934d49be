"""The bulk face-embedding job: one Batch array child embeds, stores and indexes its shard of images.

Every image goes through `FaceService.process_keys` (read from the input bucket, detect + embed in
one batched call, sidecar under S3_UPLOAD_PATH, upsert into the vector index by deterministic face
id), exactly as the app does. On top of it this module adds what a long, interruptible job needs:
sharding, chunking, retries of transient failures, checkpoints, resume and the shard's outputs.

Outputs under s3://ML_OUTPUT_BUCKET/OUTPUT_PREFIX/ (see README.md for the schemas):
  results-<i>.parquet, manifest-<i>.jsonl, summary-<i>.json, and while running
  _checkpoints/results-<i>/part-NNNNN.parquet (removed once results-<i>.parquet is written).
"""

from __future__ import annotations

import io
import json
import logging
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from gpu_app.batch import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, ConfigError, output_key, require
from gpu_app.batch.sharding import (
    INPUTS_NAME,
    InputItem,
    list_prefix,
    pinned_inputs,
    read_manifest,
    shard_bounds,
)
from gpu_app.config import Settings
from gpu_app.service import FaceService, ImageOutcome, now_iso
from gpu_app.storage import ImageStorage, ObjectNotFoundError

log = logging.getLogger(__name__)

Status = Literal["ok", "failed", "retry"]
# "ok": stored and indexed. "failed": the image itself is bad (4xx: corrupt, missing, too large),
# never retried. "retry": a transient failure (storage or index outage) left after the retries;
# a re-run of the shard tries it again.
DONE: Final = frozenset({"ok", "failed"})
MAX_SUMMARY_FAILURES: Final = 20


@dataclass(frozen=True, slots=True)
class EmbedConfig:
    input_bucket: str
    output_bucket: str
    output_prefix: str
    input_prefix: str | None = None
    manifest_key: str | None = None
    collection: str = "default"
    array_index: int = 0
    array_size: int = 1
    batch_size: int = 32
    checkpoint_every: int = 100
    max_failed_fraction: float = 0.01
    retries: int = 3
    retry_backoff: float = 2.0
    image_count: int | None = None  # what the dispatcher counted, for a consistency warning
    images_per_child: int | None = None
    job_id: str | None = None  # AWS Batch's, recorded in the summary
    job_attempt: str | None = None

    def validate(self) -> None:
        require(
            [
                ("ML_INPUT_BUCKET", "--input-bucket", self.input_bucket),
                ("ML_OUTPUT_BUCKET", "--output-bucket", self.output_bucket),
                ("OUTPUT_PREFIX", "--output-prefix", self.output_prefix.strip("/")),
            ]
        )
        if (self.input_prefix is None) == (self.manifest_key is None):
            raise ConfigError(
                "set exactly one of INPUT_PREFIX (--input-prefix) or MANIFEST_KEY (--manifest-key)"
            )
        shard_bounds(0, self.array_index, self.array_size)
        for name, value, low in (
            ("BATCH_SIZE", self.batch_size, 1),
            ("CHECKPOINT_EVERY", self.checkpoint_every, 1),
        ):
            if value < low:
                raise ConfigError(f"{name} must be at least {low}, got {value}")
        if not 0.0 <= self.max_failed_fraction <= 1.0:
            raise ConfigError(f"MAX_FAILED_FRACTION must be within 0..1, got {self.max_failed_fraction}")
        if self.retries < 0 or self.retry_backoff < 0:
            raise ConfigError("CHUNK_RETRIES and RETRY_BACKOFF must not be negative")

    def output_key(self, name: str) -> str:
        return output_key(self.output_prefix, name)


def job_settings(config: EmbedConfig, settings: Settings) -> Settings:
    """The app's settings with storage pinned to the input bucket.

    Sidecars go where the app writes them (same bucket, S3_UPLOAD_PATH), so `python -m gpu_app
    reindex` sees every image whichever path embedded it.
    """
    explicit = settings.s3_bucket_name
    if explicit and explicit != config.input_bucket:
        raise ConfigError(
            f"S3_BUCKET_NAME={explicit} differs from ML_INPUT_BUCKET={config.input_bucket}: the job reads "
            "images and writes their sidecars in one bucket; unset S3_BUCKET_NAME or make them equal"
        )
    return settings.model_copy(update={"storage_backend": "s3", "s3_bucket_name": config.input_bucket})


def shard_exit_code(total: int, failed: int, retry: int, max_failed_fraction: float) -> int:
    """1 when bad images exceed the tolerance, or when transient failures left work undone.

    Undone work always fails the child, so Batch's retry strategy (or a re-submission) resumes it.
    """
    if retry:
        return EXIT_FAILED
    if total and failed / total > max_failed_fraction:
        return EXIT_FAILED
    return EXIT_OK


# --- results table ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FaceRow:
    image_key: str
    image_id: str
    face_id: str
    bbox: tuple[float, float, float, float]
    det_score: float
    embedding: np.ndarray  # float32 (dim,)
    model_pack: str


def results_schema(dim: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("image_key", pa.string(), nullable=False),
            pa.field("image_id", pa.string(), nullable=False),
            pa.field("face_id", pa.string(), nullable=False),
            pa.field("bbox", pa.list_(pa.float32(), 4), nullable=False),
            pa.field("det_score", pa.float32(), nullable=False),
            pa.field("embedding", pa.list_(pa.float32(), dim), nullable=False),
            pa.field("model_pack", pa.string(), nullable=False),
        ]
    )


def rows_to_parquet(rows: Sequence[FaceRow], dim: int) -> bytes:
    def fixed(values: np.ndarray, size: int) -> pa.Array:
        return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1), pa.float32()), size)

    bboxes = np.asarray([r.bbox for r in rows], dtype=np.float32).reshape(len(rows), 4)
    vectors = np.asarray([r.embedding for r in rows], dtype=np.float32).reshape(len(rows), dim)
    table = pa.Table.from_arrays(
        [
            pa.array([r.image_key for r in rows], pa.string()),
            pa.array([r.image_id for r in rows], pa.string()),
            pa.array([r.face_id for r in rows], pa.string()),
            fixed(bboxes, 4),
            pa.array(np.asarray([r.det_score for r in rows], dtype=np.float32)),
            fixed(vectors, dim),
            pa.array([r.model_pack for r in rows], pa.string()),
        ],
        schema=results_schema(dim),
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def parquet_to_rows(data: bytes, dim: int) -> list[FaceRow]:
    table = pq.read_table(io.BytesIO(data))
    if table.schema.field("embedding").type != pa.list_(pa.float32(), dim):
        raise ConfigError(
            f"existing results hold {table.schema.field('embedding').type} embeddings, this model "
            f"{dim}-d: write to another OUTPUT_PREFIX"
        )
    n = table.num_rows
    bboxes = table.column("bbox").combine_chunks().flatten().to_numpy().reshape(n, 4)
    vectors = table.column("embedding").combine_chunks().flatten().to_numpy().reshape(n, dim)
    columns = {name: table.column(name).to_pylist() for name in ("image_key", "image_id", "face_id")}
    scores = table.column("det_score").to_pylist()
    packs = table.column("model_pack").to_pylist()
    return [
        FaceRow(
            image_key=columns["image_key"][i],
            image_id=columns["image_id"][i],
            face_id=columns["face_id"][i],
            bbox=tuple(float(v) for v in bboxes[i]),  # type: ignore[arg-type]
            det_score=float(scores[i]),
            embedding=vectors[i].copy(),
            model_pack=packs[i],
        )
        for i in range(n)
    ]


# --- the job ---------------------------------------------------------------------------------
class ShardJob:
    """One array child: resume from the checkpoint, process the rest in chunks, write the outputs."""

    def __init__(
        self,
        config: EmbedConfig,
        service: FaceService,
        outputs: ImageStorage,
        items: Sequence[InputItem],
        stop: threading.Event,
        *,
        started: float | None = None,
        model_load_seconds: float | None = None,
    ) -> None:
        self.started = time.monotonic() if started is None else started
        self.model_load_seconds = model_load_seconds
        self.config = config
        self.service = service
        self.outputs = outputs
        self.items = list(items)
        self.stop = stop
        self.pack = service.engine.info.model_pack
        self.dim = service.engine.info.embedding_dim
        self.records: dict[str, dict[str, Any]] = {}
        self.rows: dict[tuple[str, str], FaceRow] = {}  # by (image key, face id): see _load_checkpoint
        self.new_rows: list[FaceRow] = []
        self.next_part = 0
        self.loaded = False  # a checkpoint written before the old one was read would overwrite it
        self.skipped = 0
        self.processed = 0
        self.processing_seconds = 0.0
        i = config.array_index
        self.manifest_key = config.output_key(f"manifest-{i}.jsonl")
        self.results_key = config.output_key(f"results-{i}.parquet")
        self.summary_key = config.output_key(f"summary-{i}.json")
        self.parts_prefix = config.output_key(f"_checkpoints/results-{i}/")

    # --- resume ------------------------------------------------------------------------------
    def load_checkpoint(self) -> None:
        """Keep the records of finished images whose face rows are all there; the rest is redone."""
        in_shard = {item.key for item in self.items}
        part_keys = sorted(self.outputs.list(self.parts_prefix))
        self.next_part = 1 + max((_part_number(k) for k in part_keys), default=-1)
        try:
            lines = self.outputs.get(self.manifest_key).decode("utf-8").splitlines()
        except ObjectNotFoundError:
            self.loaded = True
            return
        records: dict[str, dict[str, Any]] = {}
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                log.warning("ignoring an unreadable checkpoint line: %.200s", line)
                continue
            if record.get("key") in in_shard and record.get("status") in DONE:
                records[record["key"]] = record
        packs = {r.get("model_pack") for r in records.values() if r["status"] == "ok"} - {self.pack}
        if packs:
            raise ConfigError(
                f"{self.outputs.uri(self.manifest_key)} holds results of model pack(s) {sorted(packs)}, "
                f"this job runs {self.pack!r}: write to another OUTPUT_PREFIX"
            )
        for key in [self.results_key, *part_keys]:
            try:
                rows = parquet_to_rows(self.outputs.get(key), self.dim)
            except ObjectNotFoundError:
                continue
            for row in rows:
                record = records.get(row.image_key)
                # A part written just before a kill may hold images the manifest never recorded:
                # they are redone, and their rows replaced (same face ids), never doubled.
                if record is not None and record["status"] == "ok":
                    self.rows[(row.image_key, row.face_id)] = row
        found: dict[str, int] = {}
        for image_key, _ in self.rows:
            found[image_key] = found.get(image_key, 0) + 1
        for key, record in list(records.items()):
            if record["status"] == "ok" and found.get(key, 0) != record.get("faces"):
                log.warning("checkpoint of %s lacks its face rows: processing it again", key)
                del records[key]
                self.rows = {k: v for k, v in self.rows.items() if k[0] != key}
        self.records = records
        self.skipped = len(records)
        self.loaded = True
        log.info(
            "resuming: %d of %d images already done (%d faces) per %s",
            self.skipped,
            len(self.items),
            len(self.rows),
            self.outputs.uri(self.manifest_key),
        )

    # --- processing --------------------------------------------------------------------------
    def run(self) -> int:
        todo = [item for item in self.items if item.key not in self.records]
        total = len(self.items)
        every = self.config.checkpoint_every
        since_checkpoint = 0
        position = 0
        started = time.monotonic()
        while position < len(todo) and not self.stop.is_set():
            # Chunks end on checkpoint boundaries, so a kill loses at most CHECKPOINT_EVERY images.
            size = min(self.config.batch_size, every - since_checkpoint)
            chunk = todo[position : position + size]
            position += len(chunk)
            chunk_started = time.monotonic()
            outcomes = self.process_chunk([item.key for item in chunk])
            self.processing_seconds += time.monotonic() - chunk_started
            for item in chunk:
                self.record(item, outcomes[item.key])
            self.processed += len(chunk)
            since_checkpoint += len(chunk)
            if since_checkpoint >= every:
                self.checkpoint()
                since_checkpoint = 0
            self.log_progress(total, started)
        if self.stop.is_set() and position < len(todo):
            self.checkpoint()
            log.warning(
                "stopped by SIGTERM after %d images; checkpoint written, a re-run resumes here",
                self.skipped + self.processed,
            )
            return EXIT_INTERRUPTED
        return self.finish()

    def process_chunk(self, keys: list[str]) -> dict[str, ImageOutcome]:
        """One batched FaceService call; transient failures (5xx, not indexed) retried with backoff."""
        results: dict[str, ImageOutcome] = {}
        pending = keys
        for attempt in range(self.config.retries + 1):
            outcomes = self.service.process_keys(pending, self.config.collection)
            results.update(zip(pending, outcomes, strict=True))
            pending = [
                key for key, outcome in zip(pending, outcomes, strict=True) if _status(outcome) == "retry"
            ]
            if not pending or attempt == self.config.retries:
                break
            delay = self.config.retry_backoff * 2**attempt
            reason = _error(results[pending[0]])
            log.warning(
                "%d image(s) failed transiently (%s); retry %d/%d in %.1fs",
                len(pending),
                reason["reason"] if reason else "?",
                attempt + 1,
                self.config.retries,
                delay,
            )
            if self.stop.wait(delay):
                break  # stopping: the rest stays "retry" and is redone by the next run
        return results

    def record(self, item: InputItem, outcome: ImageOutcome) -> None:
        status = _status(outcome)
        record: dict[str, Any] = {
            "key": item.key,
            "image_id": outcome.image_id,
            "status": status,
            "faces": len(outcome.faces) if status == "ok" else 0,
            "error": _error(outcome),
            "model_pack": self.pack,
        }
        if item.metadata:
            record["metadata"] = item.metadata
        self.records[item.key] = record
        if status != "ok":
            log.warning("image %s %s: %s", item.key, status, record["error"])
            return
        assert outcome.image_id is not None
        for face in outcome.faces:
            row = FaceRow(
                image_key=item.key,
                image_id=outcome.image_id,
                face_id=face.face_id,
                bbox=face.bbox,
                det_score=face.det_score,
                embedding=np.asarray(face.embedding, dtype=np.float32),
                model_pack=self.pack,
            )
            self.rows[(item.key, face.face_id)] = row
            self.new_rows.append(row)

    def log_progress(self, total: int, started: float) -> None:
        done = self.skipped + self.processed
        elapsed = max(time.monotonic() - started, 1e-9)
        rate = self.processed / elapsed
        eta = (total - done) / rate if rate > 0 else 0.0
        counts = self.counts()
        log.info(
            "shard %d/%d: %d/%d images (%.0f%%) ok=%d failed=%d retry=%d faces=%d rate=%.1f img/s eta=%.0fs",
            self.config.array_index,
            self.config.array_size,
            done,
            total,
            100.0 * done / total if total else 100.0,
            counts["ok"],
            counts["failed"],
            counts["retry"],
            len(self.rows),
            rate,
            eta,
        )

    # --- outputs -----------------------------------------------------------------------------
    def ordered_records(self) -> list[dict[str, Any]]:
        return [self.records[item.key] for item in self.items if item.key in self.records]

    def manifest_bytes(self) -> bytes:
        return "".join(json.dumps(r) + "\n" for r in self.ordered_records()).encode()

    def checkpoint(self) -> None:
        """The new face rows as a part, then the manifest: the manifest is what a resume trusts."""
        if self.new_rows:
            key = f"{self.parts_prefix}part-{self.next_part:05d}.parquet"
            self.outputs.put(key, rows_to_parquet(self.new_rows, self.dim), "application/vnd.apache.parquet")
            self.next_part += 1
            self.new_rows = []
        self.outputs.put(self.manifest_key, self.manifest_bytes(), "application/x-ndjson")
        log.info(
            "checkpoint: %d images recorded in %s", len(self.records), self.outputs.uri(self.manifest_key)
        )

    def counts(self) -> dict[str, int]:
        counts = {"ok": 0, "failed": 0, "retry": 0}
        for record in self.records.values():
            counts[record["status"]] += 1
        return counts

    def finish(self) -> int:
        order = {item.key: n for n, item in enumerate(self.items)}
        rows = sorted(self.rows.values(), key=lambda r: (order[r.image_key], r.face_id))
        self.outputs.put(self.results_key, rows_to_parquet(rows, self.dim), "application/vnd.apache.parquet")
        self.outputs.put(self.manifest_key, self.manifest_bytes(), "application/x-ndjson")
        counts = self.counts()
        code = shard_exit_code(
            len(self.items), counts["failed"], counts["retry"], self.config.max_failed_fraction
        )
        self.outputs.put(
            self.summary_key,
            json.dumps(self.summary(counts, len(rows), code), indent=2).encode(),
            "application/json",
        )
        for key in list(self.outputs.list(self.parts_prefix)):
            self.outputs.delete(key)  # results-<i>.parquet now holds every row
        return code

    def summary(self, counts: dict[str, int], faces: int, code: int) -> dict[str, Any]:
        info = self.service.engine.info
        failures = [r for r in self.ordered_records() if r["status"] != "ok"]
        return {
            "shard_index": self.config.array_index,
            "shard_size": self.config.array_size,
            "first_key": self.items[0].key if self.items else None,
            "last_key": self.items[-1].key if self.items else None,
            "images": {
                "total": len(self.items),
                "ok": counts["ok"],
                "failed": counts["failed"],
                "retry": counts["retry"],
                "skipped_resumed": self.skipped,
                "processed": self.processed,
            },
            "faces": faces,
            "seconds": round(time.monotonic() - self.started, 3),
            "model_load_seconds": None
            if self.model_load_seconds is None
            else round(self.model_load_seconds, 3),
            "processing_seconds": round(self.processing_seconds, 3),
            "images_per_second": round(self.processed / self.processing_seconds, 3)
            if self.processing_seconds
            else None,
            "model_pack": info.model_pack,
            "embedding_dim": info.embedding_dim,
            "providers": {"requested": info.requested_providers, "applied": info.applied_providers},
            "collection": self.config.collection,
            "vector_index": self.service.index.backend,
            "max_failed_fraction": self.config.max_failed_fraction,
            "exit_code": code,
            "failures": [
                {"key": r["key"], "status": r["status"], "error": r["error"]}
                for r in failures[:MAX_SUMMARY_FAILURES]
            ],
            "job_id": self.config.job_id,
            "job_attempt": self.config.job_attempt,
            "finished_at": now_iso(),
        }


def _status(outcome: ImageOutcome) -> Status:
    if outcome.error is None:
        return "ok" if outcome.indexed else "retry"
    return "failed" if outcome.error.status < 500 else "retry"


def _error(outcome: ImageOutcome) -> dict[str, Any] | None:
    if outcome.error is not None:
        return {"status": outcome.error.status, "reason": outcome.error.reason}
    if not outcome.indexed:
        return {"status": 503, "reason": outcome.warning or "vectors not indexed"}
    return None


def _part_number(key: str) -> int:
    try:
        return int(key.rsplit("part-", 1)[1].split(".", 1)[0])
    except (IndexError, ValueError):
        return -1


# --- entry point -----------------------------------------------------------------------------
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
