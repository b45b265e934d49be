"""One `embed` array child's work over its shard: chunks through `FaceService.process_keys`, retries
of transient failures, checkpoints (face rows as parquet parts, then the manifest), resume from
them, and the shard's outputs (results, manifest, summary) with its exit code.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any, Final, Literal

import numpy as np

from gpu_app.batch import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, ConfigError
from gpu_app.batch.embed_config import EmbedConfig
from gpu_app.batch.results_table import FaceRow, parquet_to_rows, rows_to_parquet
from gpu_app.batch.sharding import InputItem
from gpu_app.service import FaceService, ImageOutcome, now_iso
from gpu_app.storage import ImageStorage, ObjectNotFoundError

log = logging.getLogger(__name__)

Status = Literal["ok", "failed", "retry"]
# "ok": stored and indexed. "failed": the image itself is bad (4xx: corrupt, missing, too large),
# never retried. "retry": a transient failure (storage or index outage) left after the retries;
# a re-run of the shard tries it again.
DONE: Final = frozenset({"ok", "failed"})
MAX_SUMMARY_FAILURES: Final = 20


def shard_exit_code(total: int, failed: int, retry: int, max_failed_fraction: float) -> int:
    """1 when bad images exceed the tolerance, or when transient failures left work undone.

    Undone work always fails the child, so Batch's retry strategy (or a re-submission) resumes it.
    """
    if retry:
        return EXIT_FAILED
    if total and failed / total > max_failed_fraction:
        return EXIT_FAILED
    return EXIT_OK


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
        packs = {str(r.get("model_pack")) for r in records.values() if r["status"] == "ok"} - {self.pack}
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
