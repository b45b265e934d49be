"""`python -m gpu_app.batch embed` as Batch runs it: real processes, the real model, S3 on moto."""

from __future__ import annotations

import io
import json
import signal
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from gpu_app.engine.insightface_engine import InsightFaceEngine
from gpu_app.imaging import decode_image
from gpu_app.index.embedded import EmbeddedIndex
from gpu_app.sidecar import Sidecar
from tests.batch.conftest import (
    INPUT_BUCKET,
    PROCESS_TIMEOUT,
    Buckets,
    JobEnv,
    blank_images,
    corrupt_image,
    face_images,
    run_job,
    start_job,
)
from tests.gpu_app.conftest import MODEL_PACK, MODEL_ROOT

pytestmark = pytest.mark.slow

PREFIX = "photos/batch1/"
OUT = "jobs/faces/exp-1/embed-test/"


@pytest.fixture(scope="module")
def engine() -> InsightFaceEngine:
    return InsightFaceEngine(model_root=MODEL_ROOT, model_pack=MODEL_PACK, provider_preference="cpu")


def upload(buckets: Buckets, images: dict[str, bytes], prefix: str = PREFIX) -> list[str]:
    for name, data in images.items():
        buckets.put(prefix + name, data)
    return sorted(prefix + name for name in images)


def results(buckets: Buckets, index: int, prefix: str = OUT) -> pa.Table:
    return pq.read_table(io.BytesIO(buckets.get(f"{prefix}results-{index}.parquet")))


def index_count(tmp_path: Path, dim: int) -> tuple[int, EmbeddedIndex]:
    index = EmbeddedIndex(tmp_path / "index")
    index.open(dim, MODEL_PACK)
    return index.count(), index


def test_two_array_children_split_the_prefix_and_embed_every_image_once(
    buckets: Buckets, job_env: JobEnv, tmp_path: Path, engine: InsightFaceEngine
) -> None:
    images = face_images() | blank_images() | corrupt_image()
    keys = upload(buckets, images)
    buckets.put(PREFIX + "notes.txt", b"not an image")  # filtered out by extension
    buckets.put("elsewhere/outside.jpg", images["a_original.jpg"])  # outside the prefix

    procs = [
        start_job(
            "embed",
            job_env(
                INPUT_PREFIX=PREFIX,
                OUTPUT_PREFIX=OUT,
                AWS_BATCH_JOB_ARRAY_INDEX=str(i),
                AWS_BATCH_JOB_ARRAY_SIZE="2",
                AWS_BATCH_JOB_ID=f"job-1:{i}",
                IMAGE_COUNT=str(len(keys)),
                BATCH_SIZE="4",
                MAX_FAILED_FRACTION="0.25",
            ),
            tmp_path,
        )
        for i in (0, 1)
    ]
    outputs = [proc.communicate(timeout=PROCESS_TIMEOUT)[0] for proc in procs]
    for proc, output in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, output
    assert "providers requested ['CPUExecutionProvider'], applied" in outputs[0]
    assert len(keys) == 12
    assert "shard 1/2: 6/6 images (100%)" in outputs[1]

    manifests = [buckets.jsonl(f"{OUT}manifest-{i}.jsonl") for i in (0, 1)]
    shard_keys = [[line["key"] for line in manifest] for manifest in manifests]
    # Contiguous, balanced, disjoint, covering every image once, in sorted key order.
    assert shard_keys == [keys[:6], keys[6:]]
    pinned = [json.loads(line)["key"] for line in buckets.get(f"{OUT}inputs.jsonl").decode().splitlines()]
    assert pinned == keys

    by_key = {line["key"]: line for manifest in manifests for line in manifest}
    for name in face_images():
        assert by_key[PREFIX + name]["status"] == "ok"
        assert by_key[PREFIX + name]["faces"] >= (2 if name.startswith("f_") else 5), name
    for name in blank_images():
        assert by_key[PREFIX + name] | {"image_id": None} == {
            "key": PREFIX + name,
            "image_id": None,
            "status": "ok",
            "faces": 0,
            "error": None,
            "model_pack": MODEL_PACK,
        }
    corrupt = by_key[PREFIX + "i_corrupt.jpg"]
    assert corrupt["status"] == "failed"
    assert corrupt["error"]["status"] == 422
    assert "corrupt or truncated" in corrupt["error"]["reason"]

    dim = engine.info.embedding_dim
    tables = [results(buckets, i) for i in (0, 1)]
    for table in tables:
        assert table.schema.field("embedding").type == pa.list_(pa.float32(), dim)
        assert table.schema.field("bbox").type == pa.list_(pa.float32(), 4)
        assert table.schema.field("det_score").type == pa.float32()
    table = pa.concat_tables(tables)
    rows_per_key = Counter(table.column("image_key").to_pylist())
    assert {k: v for k, v in rows_per_key.items()} == {
        k: line["faces"] for k, line in by_key.items() if line["faces"]
    }
    face_ids = table.column("face_id").to_pylist()
    assert len(face_ids) == len(set(face_ids)) == sum(line["faces"] for line in by_key.values())
    for key, image_id, face_id in zip(
        table.column("image_key").to_pylist(), table.column("image_id").to_pylist(), face_ids, strict=True
    ):
        assert image_id == by_key[key]["image_id"] and face_id.startswith(image_id + "-")
    assert set(table.column("model_pack").to_pylist()) == {MODEL_PACK}

    # The stored vectors are the model's: same faces, same embeddings as a direct call.
    key = PREFIX + "a_original.jpg"
    mine = table.filter(pc.equal(table.column("image_key"), key))
    vectors = mine.column("embedding").combine_chunks().flatten().to_numpy().reshape(-1, dim)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    direct = engine.analyze([decode_image(images["a_original.jpg"], max_pixels=10**8).bgr])[0]
    assert len(direct) == mine.num_rows
    expected = np.stack([face.embedding for face in direct])
    assert np.min(np.sum(vectors * expected, axis=1)) > 0.999

    # Sidecars where the app writes them, in the input bucket: `reindex` sees these images.
    sidecar_keys = buckets.keys("upload_with_embed/", INPUT_BUCKET)
    ok_images = {line["image_id"] for line in by_key.values() if line["status"] == "ok"}
    assert {k.split("/")[1] for k in sidecar_keys} == ok_images
    sidecar = Sidecar.from_json(
        buckets.get(f"upload_with_embed/{by_key[key]['image_id']}/a_original.jpg.faces.json", INPUT_BUCKET)
    )
    assert sidecar.storage_key == key and len(sidecar.faces) == mine.num_rows

    count, index = index_count(tmp_path, dim)
    try:
        assert count == len(face_ids)
        assert all(index.get(face_id) is not None for face_id in face_ids)
    finally:
        index.close()

    summaries = [buckets.json(f"{OUT}summary-{i}.json") for i in (0, 1)]
    failed_shard = 0 if PREFIX + "i_corrupt.jpg" in shard_keys[0] else 1
    for i, summary in enumerate(summaries):
        assert summary["shard_index"] == i and summary["shard_size"] == 2
        assert summary["images"]["total"] == 6
        assert summary["images"]["failed"] == (1 if i == failed_shard else 0)
        assert summary["images"]["skipped_resumed"] == 0
        assert summary["faces"] == tables[i].num_rows
        assert summary["embedding_dim"] == dim and summary["model_pack"] == MODEL_PACK
        assert summary["providers"]["applied"]["recognition"] == ["CPUExecutionProvider"]
        assert summary["images_per_second"] > 0
        assert summary["exit_code"] == 0
        assert summary["job_id"] == f"job-1:{i}"
    assert summaries[failed_shard]["failures"][0]["key"] == PREFIX + "i_corrupt.jpg"
    assert buckets.keys(f"{OUT}_checkpoints/") == []


def test_a_killed_child_resumes_from_its_checkpoint_without_duplicates(
    buckets: Buckets, job_env: JobEnv, tmp_path: Path
) -> None:
    keys = upload(buckets, face_images() | blank_images())
    env = job_env(INPUT_PREFIX=PREFIX, OUTPUT_PREFIX=OUT, CHECKPOINT_EVERY="1", BATCH_SIZE="4")
    checkpoint = f"{OUT}manifest-0.jsonl"

    proc = start_job("embed", env, tmp_path)
    deadline = time.monotonic() + PROCESS_TIMEOUT
    while not buckets.exists(checkpoint) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # a reclaimed spot instance: no SIGTERM grace
    output, _ = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, f"the child ended on its own before the kill:\n{output}"
    done_before = buckets.jsonl(checkpoint)
    assert 1 <= len(done_before) < len(keys)

    code, output = run_job("embed", env, tmp_path)
    assert code == 0, output
    summary = buckets.json(f"{OUT}summary-0.json")
    assert summary["images"]["skipped_resumed"] == len(done_before)
    assert summary["images"]["processed"] == len(keys) - len(done_before)
    assert summary["images"]["ok"] == len(keys)
    assert f"resuming: {len(done_before)} of {len(keys)} images already done" in output

    manifest = buckets.jsonl(checkpoint)
    assert [line["key"] for line in manifest] == keys
    table = results(buckets, 0)
    face_ids = table.column("face_id").to_pylist()
    assert len(face_ids) == len(set(face_ids)) == sum(line["faces"] for line in manifest) > 0
    count, index = index_count(tmp_path, summary["embedding_dim"])
    index.close()
    assert count == len(face_ids)  # images redone after the kill were upserted, not added twice
    assert buckets.keys(f"{OUT}_checkpoints/") == []

    # Running a finished shard again changes nothing.
    code, output = run_job("embed", env, tmp_path)
    assert code == 0, output
    again = buckets.json(f"{OUT}summary-0.json")
    assert again["images"]["skipped_resumed"] == len(keys) and again["images"]["processed"] == 0
    assert results(buckets, 0).equals(table)


def test_manifest_input_with_plain_and_json_lines(buckets: Buckets, job_env: JobEnv, tmp_path: Path) -> None:
    faces = face_images()
    upload(buckets, {"a.jpg": faces["a_original.jpg"], "b.jpg": faces["b_hflip.jpg"]}, "in/")
    upload(buckets, {"blank.jpg": blank_images()["h_blank1.jpg"]}, "other/")
    lines = [
        "in/a.jpg",
        "",
        json.dumps({"key": "other/blank.jpg", "camera": "hall", "ts": 17}),
        json.dumps({"key": "in/b.jpg"}),
        "in/missing.jpg",
        "in/a.jpg",  # listed twice: processed once
    ]
    buckets.put("manifests/run.jsonl", "\n".join(lines).encode())
    out = "jobs/faces/exp-1/manifest-run/"
    # Default MAX_FAILED_FRACTION (0.01): one missing image of four fails the child.
    code, output = run_job(
        "embed", job_env(MANIFEST_KEY="manifests/run.jsonl", OUTPUT_PREFIX=out, COLLECTION="hall"), tmp_path
    )
    assert code == 1, output

    manifest = {line["key"]: line for line in buckets.jsonl(f"{out}manifest-0.jsonl")}
    assert list(manifest) == ["in/a.jpg", "other/blank.jpg", "in/b.jpg", "in/missing.jpg"]
    assert manifest["other/blank.jpg"]["metadata"] == {"camera": "hall", "ts": 17}
    assert "metadata" not in manifest["in/a.jpg"]
    assert manifest["in/missing.jpg"]["status"] == "failed"
    assert manifest["in/missing.jpg"]["error"]["status"] == 404
    assert [manifest[k]["status"] for k in ("in/a.jpg", "in/b.jpg", "other/blank.jpg")] == ["ok"] * 3
    summary = buckets.json(f"{out}summary-0.json")
    assert summary["exit_code"] == 1 and summary["collection"] == "hall"
    assert summary["images"] | {"processed": 0} == {
        "total": 4,
        "ok": 3,
        "failed": 1,
        "retry": 0,
        "skipped_resumed": 0,
        "processed": 0,
    }
    table = results(buckets, 0, out)
    assert Counter(table.column("image_key").to_pylist()) == {
        "in/a.jpg": manifest["in/a.jpg"]["faces"],
        "in/b.jpg": manifest["in/b.jpg"]["faces"],
    }
    index = EmbeddedIndex(tmp_path / "index")
    index.open(summary["embedding_dim"], MODEL_PACK)
    try:
        record = index.get(table.column("face_id")[0].as_py())
        assert record is not None and record.collection == "hall"
    finally:
        index.close()
