"""`materialize`: a job's shard results in one piece, with people clustered across the whole job.

Runs after the `embed` array job (the dispatcher submits it with a dependency on the array, so it
starts once every child succeeded). Reads `results-<i>.parquet` and `manifest-<i>.jsonl` of every
shard under OUTPUT_PREFIX and writes:

* `final.parquet`: every face row of every shard exactly once (a face id seen twice, e.g. the same
  image listed in two shards' inputs, is kept at its first place), in shard and input order, with
  a `person_id` column: faces clustered by the same density rule as the app (gpu_app/people),
  with the pack's threshold and PEOPLE_MIN_FACES; null for faces still waiting for similar ones.
* `final-manifest.json`: shards, image counts by status, faces, duplicates dropped, people, the
  clustering policy and timings.

Refuses (exit 1, nothing written) when a shard's outputs are missing or any image is left `retry`:
a final result that silently lacks images would look complete. Exit 2: configuration.
"""

from __future__ import annotations

import io
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gpu_app.batch import EXIT_FAILED, EXIT_OK, ConfigError, output_key, require
from gpu_app.config import Settings
from gpu_app.people.clustering import ClusterPolicy, cluster_vectors
from gpu_app.service import now_iso
from gpu_app.storage import ImageStorage, ObjectNotFoundError

log = logging.getLogger(__name__)

FINAL_NAME = "final.parquet"
FINAL_MANIFEST_NAME = "final-manifest.json"


@dataclass(frozen=True, slots=True)
class MaterializeConfig:
    output_bucket: str
    output_prefix: str
    array_size: int | None = None  # shards expected; None: as many as the outputs show
    people_threshold: float | None = None  # None: the pack's (PEOPLE_THRESHOLD / MATCH_THRESHOLD)
    min_faces: int | None = None  # None: PEOPLE_MIN_FACES

    def validate(self) -> None:
        require(
            [
                ("ML_OUTPUT_BUCKET", "--output-bucket", self.output_bucket),
                ("OUTPUT_PREFIX", "--output-prefix", self.output_prefix.strip("/")),
            ]
        )
        if self.array_size is not None and self.array_size < 1:
            raise ConfigError(f"ARRAY_SIZE must be at least 1, got {self.array_size}")


class IncompleteJobError(RuntimeError):
    """A shard's outputs are missing, or images wait for a retry: no final result yet."""


def shard_count(outputs: ImageStorage, prefix: str) -> int:
    """How many shards the outputs show (highest results-/manifest-<i> index + 1)."""
    highest = -1
    for key in outputs.list(output_key(prefix, "")):
        name = key.rsplit("/", 1)[-1]
        for stem, suffix in (("results-", ".parquet"), ("manifest-", ".jsonl")):
            number = name.removeprefix(stem).removesuffix(suffix)
            if name.startswith(stem) and name.endswith(suffix) and number.isdigit():
                highest = max(highest, int(number))
    return highest + 1


def materialize(config: MaterializeConfig, outputs: ImageStorage, settings: Settings) -> dict[str, Any]:
    """Merge, de-duplicate, cluster and write; returns the final manifest."""
    started = time.monotonic()
    prefix = config.output_prefix
    shards = config.array_size or shard_count(outputs, prefix)
    if shards == 0:
        raise IncompleteJobError(f"no shard outputs under {prefix!r}: has the embed job run?")
    tables: list[pa.Table] = []
    statuses: dict[str, int] = {"ok": 0, "failed": 0, "retry": 0}
    waiting: list[str] = []
    shard_rows: list[int] = []
    for i in range(shards):
        try:
            table = pq.read_table(io.BytesIO(outputs.get(output_key(prefix, f"results-{i}.parquet"))))
            manifest = outputs.get(output_key(prefix, f"manifest-{i}.jsonl"))
        except ObjectNotFoundError as exc:
            raise IncompleteJobError(f"shard {i} of {shards} has not finished ({exc} is missing)") from None
        for line in manifest.decode().splitlines():
            if line.strip():
                record = json.loads(line)
                statuses[record["status"]] = statuses.get(record["status"], 0) + 1
                if record["status"] == "retry":
                    waiting.append(record["key"])
        tables.append(table)
        shard_rows.append(table.num_rows)
    if waiting:
        raise IncompleteJobError(
            f"{len(waiting)} image(s) wait for a retry of their shard (first: {waiting[0]}); "
            "re-run the embed job with the same OUTPUT_PREFIX, then materialize"
        )
    schemas = {t.schema.field("embedding").type for t in tables}
    if len(schemas) > 1:
        raise ConfigError(f"shards hold embeddings of different shapes {schemas}: not one job")
    merged = pa.concat_tables(tables)
    packs = set(merged.column("model_pack").to_pylist())
    if len(packs) > 1:
        raise ConfigError(f"shards hold faces of several model packs {sorted(packs)}: not one job")

    # Exactly once: the first row of each face id (shard order, then input order).
    face_ids = merged.column("face_id").to_pylist()
    first_of: dict[str, int] = {}
    for row, face_id in enumerate(face_ids):
        first_of.setdefault(face_id, row)
    keep = np.fromiter(first_of.values(), dtype=np.int64, count=len(first_of))
    final = merged.take(pa.array(keep)) if len(keep) != merged.num_rows else merged

    pack = next(iter(packs), settings.model_pack)
    pack_settings = settings.model_copy(update={"model_pack": pack})
    policy = ClusterPolicy(
        threshold=config.people_threshold
        if config.people_threshold is not None
        else pack_settings.effective_people_threshold,
        min_faces=config.min_faces or settings.people_min_faces,
    )
    clustering_started = time.monotonic()
    n = final.num_rows
    if n:
        dim = final.schema.field("embedding").type.list_size
        vectors = pc.list_flatten(final.column("embedding")).to_numpy().reshape(n, dim)
        labels = cluster_vectors(vectors, policy)
    else:
        labels = np.zeros(0, dtype=np.int64)
    clustering_seconds = time.monotonic() - clustering_started
    person_ids = pa.array(
        [f"person-{label:06d}" if label >= 0 else None for label in labels.tolist()], pa.string()
    )
    final = final.append_column(pa.field("person_id", pa.string(), nullable=True), person_ids)

    buffer = io.BytesIO()
    pq.write_table(final, buffer, compression="zstd")
    report = {
        "shards": shards,
        "shard_rows": shard_rows,
        "images": {"total": sum(statuses.values()), **statuses},
        "faces": n,
        "duplicates_dropped": merged.num_rows - n,
        "people": int(labels.max()) + 1 if n and labels.max() >= 0 else 0,
        "unassigned_faces": int((labels < 0).sum()),
        "model_pack": pack,
        "threshold": policy.threshold,
        "min_faces": policy.min_faces,
        "clustering_seconds": round(clustering_seconds, 3),
        "seconds": round(time.monotonic() - started, 3),
        "final": output_key(prefix, FINAL_NAME),
        "finished_at": now_iso(),
    }
    # The parquet first: a manifest always describes a final.parquet that exists.
    outputs.put(output_key(prefix, FINAL_NAME), buffer.getvalue(), "application/vnd.apache.parquet")
    outputs.put(
        output_key(prefix, FINAL_MANIFEST_NAME), json.dumps(report, indent=2).encode(), "application/json"
    )
    return report


def run_materialize(config: MaterializeConfig, settings: Settings) -> int:
    from gpu_app.storage.s3 import S3Storage

    config.validate()
    outputs = S3Storage(config.output_bucket, region=settings.aws_region, retries=settings.storage_retries)
    try:
        report = materialize(config, outputs, settings)
    except IncompleteJobError as exc:
        log.error("materialize refused: %s", exc)
        print(f"materialize refused: {exc}", flush=True)
        return EXIT_FAILED
    print(
        f"materialized {report['faces']} faces of {report['images']['ok']} images from {report['shards']} "
        f"shard(s) into {report['final']} ({report['duplicates_dropped']} duplicate rows dropped); "
        f"{report['people']} people, {report['unassigned_faces']} faces unassigned "
        f"(threshold {report['threshold']}, min faces {report['min_faces']}, "
        f"clustered in {report['clustering_seconds']}s)",
        flush=True,
    )
    return EXIT_OK
