"""ShardJob's bookkeeping with a scripted FaceService: chunks, checkpoints, resume, retries, SIGTERM."""

from __future__ import annotations

import hashlib
import io
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from gpu_app.batch import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, ConfigError
from gpu_app.batch.__main__ import main
from gpu_app.batch.embed_config import EmbedConfig
from gpu_app.batch.results_table import FaceRow, rows_to_parquet
from gpu_app.batch.shard_job import ShardJob, shard_exit_code
from gpu_app.batch.sharding import InputItem
from gpu_app.engine import EngineInfo
from gpu_app.service import FileError, ImageOutcome, face_id_of
from gpu_app.sidecar import SidecarFace
from gpu_app.storage.local import LocalStorage

DIM = 4
OUT = "jobs/p/e/job/"


def faces_of(key: str) -> int:
    """img00 none, img01 one, img02 two, img03 none, ..."""
    return int(key[3:5]) % 3


class ScriptedService:
    """process_keys as FaceService answers it: faces per key, 'bad*' keys 422, scripted 503s."""

    def __init__(self, transient: dict[str, int] | None = None, pack: str = "fake_pack") -> None:
        self.engine = type("Engine", (), {})()
        self.engine.info = EngineInfo(
            pack, DIM, (640, 640), ["CPUExecutionProvider"], {"recognition": ["CPU"]}
        )
        self.index = type("Index", (), {"backend": "fake"})()
        self.transient = dict(transient or {})
        self.calls: list[list[str]] = []
        self.on_call: Any = None

    def process_keys(self, keys: Sequence[str], collection: str = "default") -> list[ImageOutcome]:
        self.calls.append(list(keys))
        if self.on_call:
            self.on_call(len(self.calls))
        return [self.outcome(key) for key in keys]

    def outcome(self, key: str) -> ImageOutcome:
        if key.startswith("bad"):
            return ImageOutcome(file=key, error=FileError(422, "corrupt or truncated image data"))
        if self.transient.get(key, 0) > 0:
            self.transient[key] -= 1
            return ImageOutcome(file=key, error=FileError(503, "storage unavailable, retry later"))
        image_id = hashlib.sha256(key.encode()).hexdigest()[:32]
        faces = [
            SidecarFace(
                face_id=face_id_of(image_id, i),
                bbox=(float(i), 1.0, 10.0 + i, 12.0),
                landmarks=(),
                det_score=0.9,
                embedding=tuple(float(v) for v in np.eye(DIM, dtype=np.float32)[i % DIM]),
            )
            for i in range(faces_of(key))
        ]
        return ImageOutcome(file=key, image_id=image_id, storage_key=key, faces=faces, indexed=True)


def config(**overrides: Any) -> EmbedConfig:
    values: dict[str, Any] = {
        "input_bucket": "in",
        "output_bucket": "out",
        "output_prefix": OUT,
        "input_prefix": "",
        "batch_size": 3,
        "checkpoint_every": 4,
        "retry_backoff": 0.0,
    }
    return EmbedConfig(**(values | overrides))


def make_job(
    outputs: LocalStorage, service: ScriptedService, keys: list[str], **overrides: Any
) -> tuple[ShardJob, threading.Event]:
    stop = threading.Event()
    job = ShardJob(config(**overrides), service, outputs, [InputItem(k) for k in keys], stop)  # type: ignore[arg-type]
    job.load_checkpoint()
    return job, stop


def manifest(outputs: LocalStorage) -> list[dict[str, Any]]:
    return [json.loads(line) for line in outputs.get(f"{OUT}manifest-0.jsonl").decode().splitlines()]


def face_ids(outputs: LocalStorage) -> list[str]:
    return pq.read_table(io.BytesIO(outputs.get(f"{OUT}results-0.parquet"))).column("face_id").to_pylist()


KEYS = [f"img{i:02d}.jpg" for i in range(10)]
TOTAL_FACES = sum(faces_of(k) for k in KEYS)


def test_chunks_end_on_checkpoint_boundaries(tmp_path: Path) -> None:
    outputs, service = LocalStorage(tmp_path), ScriptedService()
    job, _ = make_job(outputs, service, KEYS)
    written: list[int] = []
    checkpoint = job.checkpoint

    def counted() -> None:
        written.append(len(job.records))
        checkpoint()

    job.checkpoint = counted  # type: ignore[method-assign]
    assert job.run() == EXIT_OK
    # batch 3, checkpoint every 4: a kill can never lose more than 4 images
    assert [len(call) for call in service.calls] == [3, 1, 3, 1, 2]
    assert written == [4, 8]
    assert [line["key"] for line in manifest(outputs)] == KEYS
    assert len(face_ids(outputs)) == TOTAL_FACES
    assert list(outputs.list(f"{OUT}_checkpoints/")) == []


def test_transient_failures_are_retried_then_left_for_the_next_run(tmp_path: Path) -> None:
    outputs = LocalStorage(tmp_path)
    service = ScriptedService(transient={"img01.jpg": 1, "img05.jpg": 5})
    job, _ = make_job(outputs, service, KEYS, retries=2)
    assert job.run() == EXIT_FAILED  # undone work fails the child whatever the tolerance
    assert service.calls[1] == ["img01.jpg"]  # only the failed image is retried
    statuses = {line["key"]: line["status"] for line in manifest(outputs)}
    assert statuses["img01.jpg"] == "ok" and statuses["img05.jpg"] == "retry"
    summary = json.loads(outputs.get(f"{OUT}summary-0.json"))
    assert summary["images"]["retry"] == 1 and summary["exit_code"] == EXIT_FAILED

    # The next run (a Batch retry) redoes only that image.
    service.calls.clear()
    service.transient.clear()
    job, _ = make_job(outputs, service, KEYS)
    assert job.skipped == 9
    assert job.run() == EXIT_OK
    assert service.calls == [["img05.jpg"]]
    assert len(face_ids(outputs)) == len(set(face_ids(outputs))) == TOTAL_FACES


def test_bad_images_are_recorded_and_never_retried(tmp_path: Path) -> None:
    outputs, service = LocalStorage(tmp_path), ScriptedService()
    keys = ["bad00.jpg", *KEYS]
    job, _ = make_job(outputs, service, keys, max_failed_fraction=0.1)
    assert job.run() == EXIT_OK  # 1 of 11 <= 10 %
    assert manifest(outputs)[0] == {
        "key": "bad00.jpg",
        "image_id": None,
        "status": "failed",
        "faces": 0,
        "error": {"status": 422, "reason": "corrupt or truncated image data"},
        "model_pack": "fake_pack",
    }
    service.calls.clear()
    job, _ = make_job(outputs, service, keys)
    assert job.run() == EXIT_FAILED  # the same shard at the default tolerance (0.01): 1 of 11 is too many
    assert service.calls == []


def test_sigterm_stops_after_the_chunk_with_a_checkpoint_and_the_rerun_finishes(tmp_path: Path) -> None:
    outputs, service = LocalStorage(tmp_path), ScriptedService()
    job, stop = make_job(outputs, service, KEYS, checkpoint_every=100)
    service.on_call = lambda n: stop.set() if n == 2 else None
    assert job.run() == EXIT_INTERRUPTED
    assert len(manifest(outputs)) == 6  # two chunks of 3, checkpointed on the way out
    assert list(outputs.list(f"{OUT}summary-0.json")) == []

    service.calls.clear()
    service.on_call = None
    job, _ = make_job(outputs, service, KEYS, checkpoint_every=100)
    assert job.skipped == 6
    assert job.run() == EXIT_OK
    assert [k for call in service.calls for k in call] == KEYS[6:]
    ids = face_ids(outputs)
    assert len(ids) == len(set(ids)) == TOTAL_FACES


def test_resume_trusts_the_manifest_not_stray_parts(tmp_path: Path) -> None:
    """A part written just before a kill (no manifest line), a line whose rows are gone: both redone."""
    outputs, service = LocalStorage(tmp_path), ScriptedService()
    done = service.outcome("img01.jpg")  # 1 face, recorded with its rows
    lost = service.outcome("img02.jpg")  # 2 faces recorded, but its part is missing
    stray = service.outcome("img04.jpg")  # rows in a part, never recorded
    lines = [
        {
            "key": "img01.jpg",
            "image_id": done.image_id,
            "status": "ok",
            "faces": 1,
            "model_pack": "fake_pack",
        },
        {
            "key": "img02.jpg",
            "image_id": lost.image_id,
            "status": "ok",
            "faces": 2,
            "model_pack": "fake_pack",
        },
    ]
    outputs.put(f"{OUT}manifest-0.jsonl", "".join(json.dumps(line) + "\n" for line in lines).encode())

    def rows(key: str, outcome: ImageOutcome) -> list[FaceRow]:
        return [
            FaceRow(
                key,
                outcome.image_id or "",
                f.face_id,
                f.bbox,
                f.det_score,
                np.asarray(f.embedding),
                "fake_pack",
            )
            for f in outcome.faces
        ]

    outputs.put(
        f"{OUT}_checkpoints/results-0/part-00003.parquet", rows_to_parquet(rows("img01.jpg", done), DIM)
    )
    outputs.put(
        f"{OUT}_checkpoints/results-0/part-00004.parquet", rows_to_parquet(rows("img04.jpg", stray), DIM)
    )
    job, _ = make_job(outputs, service, KEYS)
    assert job.skipped == 1 and job.next_part == 5
    assert job.run() == EXIT_OK
    assert service.calls[0][:3] == ["img00.jpg", "img02.jpg", "img03.jpg"]
    ids = face_ids(outputs)
    assert len(ids) == len(set(ids)) == TOTAL_FACES


def test_a_checkpoint_of_another_model_pack_is_refused(tmp_path: Path) -> None:
    outputs = LocalStorage(tmp_path)
    make_job(outputs, ScriptedService(pack="pack_a"), KEYS)[0].run()
    with pytest.raises(ConfigError, match="holds results of model pack"):
        make_job(outputs, ScriptedService(pack="pack_b"), KEYS)


@pytest.mark.parametrize(
    ("total", "failed", "retry", "tolerance", "code"),
    [
        (100, 0, 0, 0.01, 0),
        (100, 1, 0, 0.01, 0),
        (100, 2, 0, 0.01, 1),
        (100, 0, 1, 0.5, 1),
        (10, 1, 0, 0.0, 1),
        (0, 0, 0, 0.0, 0),
    ],
)
def test_exit_code_tolerance(total: int, failed: int, retry: int, tolerance: float, code: int) -> None:
    assert shard_exit_code(total, failed, retry, tolerance) == code


def test_embed_configuration_errors_exit_2_naming_what_to_set(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in (
        "ML_INPUT_BUCKET",
        "INPUT_PREFIX",
        "MANIFEST_KEY",
        "AWS_BATCH_JOB_ARRAY_INDEX",
        "AWS_BATCH_JOB_ARRAY_SIZE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ML_OUTPUT_BUCKET", "out")
    monkeypatch.setenv("OUTPUT_PREFIX", OUT)
    assert main(["embed", "--input-prefix", "p/"]) == 2
    assert "set ML_INPUT_BUCKET (or --input-bucket)" in capsys.readouterr().err
    monkeypatch.setenv("ML_INPUT_BUCKET", "in")
    assert main(["embed"]) == 2
    assert "exactly one of INPUT_PREFIX (--input-prefix) or MANIFEST_KEY" in capsys.readouterr().err
    monkeypatch.setenv("AWS_BATCH_JOB_ARRAY_INDEX", "2")
    monkeypatch.setenv("AWS_BATCH_JOB_ARRAY_SIZE", "2")
    assert main(["embed", "--input-prefix", "p/"]) == 2
    assert "array index 2 is outside 0..1" in capsys.readouterr().err
    monkeypatch.delenv("AWS_BATCH_JOB_ARRAY_SIZE")
    assert main(["embed", "--input-prefix", "p/"]) == 2
    assert "without AWS_BATCH_JOB_ARRAY_SIZE" in capsys.readouterr().err
    monkeypatch.delenv("AWS_BATCH_JOB_ARRAY_INDEX")
    monkeypatch.setenv("S3_BUCKET_NAME", "elsewhere")
    assert main(["embed", "--input-prefix", "p/"]) == 2
    assert "S3_BUCKET_NAME=elsewhere differs from ML_INPUT_BUCKET=in" in capsys.readouterr().err
