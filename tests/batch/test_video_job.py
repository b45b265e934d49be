"""`python -m gpu_app.batch video` as Batch runs it (the dispatcher's video job): a real process, the
real model, S3 on moto, a clip generated from the sample photo."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpu_app.engine.insightface_engine import InsightFaceEngine
from gpu_app.index.base import SearchFilters
from gpu_app.index.embedded import EmbeddedIndex
from gpu_app.video.pipeline import video_id
from tests.batch.conftest import Buckets, JobEnv, run_job
from tests.gpu_app.conftest import MODEL_PACK, MODEL_ROOT
from tests.support.images import sample_bgr
from tests.support.videos import face_crops, write_clip

pytestmark = pytest.mark.slow

OUT = "jobs/s3-events/incoming/video-clip-abc/"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, int]:
    """A face at [0.5, 2) and [3, 4) of a 4 s clip, and the model's embedding dimension."""
    engine = InsightFaceEngine(model_root=MODEL_ROOT, model_pack=MODEL_PACK, provider_preference="cpu")
    faces = engine.analyze([sample_bgr()])[0]
    (crop,) = face_crops([faces[2].bbox])
    path = write_clip(
        tmp_path_factory.mktemp("clip") / "clip.mp4", [(crop, [(0.5, 2.0), (3.0, 4.0)])], seconds=4
    )
    return path.read_bytes(), engine.info.embedding_dim


def test_video_job_writes_tracks_resumes_and_indexes(
    buckets: Buckets, job_env: JobEnv, clip: tuple[bytes, int], tmp_path: Path
) -> None:
    key = "incoming/team day.mp4"
    buckets.put(key, clip[0])
    env = job_env(VIDEO_KEY=key, OUTPUT_PREFIX=OUT, VIDEO_SEGMENT_SECONDS="2")
    code, output = run_job("video", env, tmp_path)
    assert code == 0, output
    result = buckets.json(OUT + "result.json")
    assert result["status"] == "succeeded" and result["segments"] == 2
    (track,) = result["tracks"]
    assert track["time_ranges"] == [[0.5, 1.5], [3.0, 3.5]]
    assert buckets.exists(track["thumbnail_key"])
    # After a reclaim (the retried attempt finds the checkpoints) nothing is analysed again.
    code, output = run_job("video", env, tmp_path)
    assert code == 0, output
    assert buckets.json(OUT + "result.json")["segments_resumed"] == 2
    index = EmbeddedIndex(Path(env["INDEX_DIR"]))
    index.open(clip[1], MODEL_PACK)
    assert index.count(SearchFilters(image_id=video_id(key))) == 1


def test_refused_video_exits_1_with_the_reason_in_its_result(
    buckets: Buckets, job_env: JobEnv, tmp_path: Path
) -> None:
    key = "incoming/broken.mov"
    buckets.put(key, b"\x00\x00\x00\x14ftypqt  " + b"\x00" * 2000)
    code, output = run_job("video", job_env(VIDEO_KEY=key, OUTPUT_PREFIX=OUT), tmp_path)
    assert code == 1, output
    result = buckets.json(OUT + "result.json")
    assert result == {
        "video_key": key,
        "status": "failed",
        "error_type": "CorruptVideo",
        "reason": result["reason"],
        "tracks": [],
    }
    assert "cannot be decoded" in result["reason"] or "no decodable frame" in result["reason"]
    assert "refused" in output
