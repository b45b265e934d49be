"""`python -m gpu_app.batch materialize`: every face of every shard exactly once, people across the job."""

from __future__ import annotations

import io
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from gpu_app.batch.materialize import IncompleteJobError, MaterializeConfig, materialize
from gpu_app.batch.results_table import FaceRow, rows_to_parquet
from gpu_app.config import Settings
from gpu_app.storage.local import LocalStorage
from tests.batch.conftest import Buckets, JobEnv, blank_images, face_images, run_job, start_job

PREFIX = "photos/people/"
OUT = "jobs/faces/exp-1/materialize-test/"


def test_materialize_after_an_array_job_holds_every_face_once_with_people(
    buckets: Buckets, job_env: JobEnv, tmp_path: Path
) -> None:
    images = face_images() | blank_images()
    for name, data in images.items():
        buckets.put(PREFIX + name, data)
    env = {"INPUT_PREFIX": PREFIX, "OUTPUT_PREFIX": OUT, "AWS_BATCH_JOB_ARRAY_SIZE": "2", "BATCH_SIZE": "4"}

    first = start_job("embed", job_env(**env, AWS_BATCH_JOB_ARRAY_INDEX="0"), tmp_path)
    assert first.communicate(timeout=240)[0] is not None and first.returncode == 0
    # Shard 1 has not run: no final result that silently lacks its images.
    code, output = run_job("materialize", job_env(OUTPUT_PREFIX=OUT, ARRAY_SIZE="2"), tmp_path)
    assert code == 1 and "shard 1 of 2 has not finished" in output, output
    assert not buckets.exists(OUT + "final")

    second = start_job("embed", job_env(**env, AWS_BATCH_JOB_ARRAY_INDEX="1"), tmp_path)
    assert second.communicate(timeout=240)[0] is not None and second.returncode == 0
    code, output = run_job("materialize", job_env(OUTPUT_PREFIX=OUT, ARRAY_SIZE="2"), tmp_path)
    assert code == 0, output

    shards = [pq.read_table(io.BytesIO(buckets.get(f"{OUT}results-{i}.parquet"))) for i in (0, 1)]
    final = pq.read_table(io.BytesIO(buckets.get(OUT + "final.parquet")))
    shard_faces = [f for table in shards for f in table.column("face_id").to_pylist()]
    assert final.column("face_id").to_pylist() == shard_faces  # all, once, in shard then input order
    assert len(set(shard_faces)) == len(shard_faces) == final.num_rows > 0
    assert final.column_names[-1] == "person_id"

    report = buckets.json(OUT + "final-manifest.json")
    assert report["shards"] == 2 and report["faces"] == final.num_rows and report["duplicates_dropped"] == 0
    assert report["images"] == {"total": len(images), "ok": len(images), "failed": 0, "retry": 0}
    assert report["threshold"] == 0.6 and report["min_faces"] == 3 and report["model_pack"]

    # Eight encodings of one group photo of six: six people, never two faces of one image together.
    persons = final.column("person_id").to_pylist()
    assert report["people"] == len({p for p in persons if p is not None}) == 6
    per_image: dict[str, list[str]] = defaultdict(list)
    for image_id, person in zip(final.column("image_id").to_pylist(), persons, strict=True):
        if person is not None:
            per_image[image_id].append(person)
    assert all(len(set(people)) == len(people) for people in per_image.values())
    assert "6 people" in output


def _shard(storage: LocalStorage, i: int, rows: list[FaceRow], statuses: list[str]) -> None:
    storage.put(f"{OUT}results-{i}.parquet", rows_to_parquet(rows, 8))
    manifest = "".join(json.dumps({"key": f"k{i}-{j}", "status": s}) + "\n" for j, s in enumerate(statuses))
    storage.put(f"{OUT}manifest-{i}.jsonl", manifest.encode())


def _rows(rng: np.random.Generator, face_ids: list[str]) -> list[FaceRow]:
    return [
        FaceRow(f"key-{f}", f[:4], f, (0.0, 0.0, 1.0, 1.0), 0.9, rng.normal(size=8).astype(np.float32), "p")
        for f in face_ids
    ]


def test_a_face_in_two_shards_is_kept_once_and_retries_block_the_result(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    rng = np.random.default_rng(0)
    shared = _rows(rng, ["img1-000"])
    _shard(storage, 0, shared + _rows(rng, ["img2-000"]), ["ok", "ok"])
    _shard(storage, 1, shared + _rows(rng, ["img3-000"]), ["ok", "ok"])
    config = MaterializeConfig(output_bucket="b", output_prefix=OUT)
    report = materialize(config, storage, Settings())
    final = pq.read_table(io.BytesIO(storage.get(OUT + "final.parquet")))
    assert final.column("face_id").to_pylist() == ["img1-000", "img2-000", "img3-000"]
    assert report["duplicates_dropped"] == 1 and report["shards"] == 2

    _shard(storage, 1, _rows(rng, ["img3-000"]), ["ok", "retry"])
    storage.delete(OUT + "final.parquet")
    with pytest.raises(IncompleteJobError, match="wait for a retry"):
        materialize(config, storage, Settings())
    assert not (tmp_path / OUT / "final.parquet").exists()
