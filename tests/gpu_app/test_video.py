"""Videos become face tracks, with the real model on clips generated from the sample photo: a face
that leaves and comes back is one track with two time ranges, one index entry per track, and a
search with a still of the person names the video and when they appear."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from gpu_app.engine.base import ImageFaces
from gpu_app.engine.insightface_engine import InsightFaceEngine
from gpu_app.index.base import SearchFilters
from gpu_app.index.embedded import EmbeddedIndex
from gpu_app.storage.local import LocalStorage
from gpu_app.video.frames import VideoRejectedError, sample_frames
from gpu_app.video.pipeline import RESULT_NAME, VideoSettings, process_video, video_id
from tests.support.images import sample_bgr
from tests.support.videos import face_crops, write_clip

KEY = "incoming/party clip.mp4"
PREFIX = "videos/party/"


@pytest.fixture(scope="module")
def crops(engine: InsightFaceEngine) -> list[np.ndarray]:
    faces = engine.analyze([sample_bgr()])[0]
    return face_crops([faces[0].bbox, faces[1].bbox])


@pytest.fixture(scope="module")
def clip(crops: list[np.ndarray], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Face A at [0, 2) and again at [3.5, 5); face B at [1, 4)."""
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    return write_clip(path, [(crops[0], [(0, 2), (3.5, 5)]), (crops[1], [(1, 4)])], seconds=5)


class CountingEngine:
    """The real engine, counting the frames it was given."""

    def __init__(self, engine: InsightFaceEngine) -> None:
        self.engine = engine
        self.info = engine.info
        self.frames = 0

    def analyze(self, images: Sequence[np.ndarray]) -> Any:
        return self.engine.analyze(images)

    def analyze_each(self, images: Sequence[np.ndarray]) -> list[ImageFaces]:
        self.frames += len(images)
        return self.engine.analyze_each(images)


@pytest.fixture
def index(tmp_path: Path, engine: InsightFaceEngine) -> EmbeddedIndex:
    index = EmbeddedIndex(tmp_path / "index")
    index.open(engine.info.embedding_dim, engine.info.model_pack)
    return index


def run(
    path: Path,
    engine: Any,
    index: EmbeddedIndex,
    outputs: LocalStorage,
    key: str = KEY,
    **settings: Any,
) -> dict[str, Any]:
    return process_video(
        path,
        key,
        engine=engine,
        index=index,
        outputs=outputs,
        output_prefix=PREFIX,
        settings=VideoSettings(**settings),
    )


def test_tracks_time_ranges_index_entries_and_search(
    clip: Path, crops: list[np.ndarray], engine: InsightFaceEngine, index: EmbeddedIndex, tmp_path: Path
) -> None:
    outputs = LocalStorage(tmp_path / "out")
    result = run(clip, engine, index, outputs)
    assert result["status"] == "succeeded"
    assert result["frames_sampled"] == 10  # 5 s at 2 per second
    ranges = sorted(track["time_ranges"] for track in result["tracks"])
    assert ranges == [[[0.0, 1.5], [3.5, 4.5]], [[1.0, 3.5]]]
    # One index entry per track, not per frame.
    assert index.count(SearchFilters(image_id=video_id(KEY))) == 2
    stored = json.loads(outputs.get(PREFIX + RESULT_NAME))
    assert stored == result
    for track in result["tracks"]:
        thumbnail = cv2.imdecode(
            np.frombuffer(outputs.get(track["thumbnail_key"]), np.uint8), cv2.IMREAD_COLOR
        )
        assert thumbnail is not None and thumbnail.shape[0] > 50
    # A still of person A (from the photo, not the video) finds the video and when A appears.
    (still_face,) = engine.analyze([crops[0]])[0]
    hits = index.search(still_face.embedding, k=1, threshold=0.3)
    assert hits[0].storage_key == f"{KEY}#t=0,1.5;3.5,4.5"
    assert hits[0].image_id == video_id(KEY)


def test_scene_cuts_are_sampled_between_rate_samples(tmp_path: Path, crops: list[np.ndarray]) -> None:
    path = tmp_path / "cut.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 10.0, (160, 120))
    for number in range(20):  # dark until 1.2 s, then a hard cut to bright
        writer.write(np.full((120, 160, 3), 20 if number < 12 else 230, np.uint8))
    writer.release()
    sampled = [(frame.timestamp, frame.reason) for frame in sample_frames(path, rate=2.0)]
    assert sampled == [(0.0, "rate"), (0.5, "rate"), (1.0, "rate"), (1.2, "scene_cut"), (1.5, "rate")]


def test_resume_analyses_only_the_unfinished_segments(
    clip: Path, engine: InsightFaceEngine, index: EmbeddedIndex, tmp_path: Path
) -> None:
    outputs = LocalStorage(tmp_path / "out")
    first = CountingEngine(engine)
    complete = run(clip, first, index, outputs, segment_seconds=2.0)
    assert complete["segments"] == 3 and first.frames == 10
    # A spot reclaim during the last segment: its checkpoint and the result were never written.
    outputs.delete(f"{PREFIX}segments/00002.json")
    outputs.delete(PREFIX + RESULT_NAME)
    second = CountingEngine(engine)
    resumed = run(clip, second, index, outputs, segment_seconds=2.0)
    assert second.frames == 2  # 4.0 and 4.5 s only
    assert resumed["segments_resumed"] == 2
    assert [t["time_ranges"] for t in resumed["tracks"]] == [t["time_ranges"] for t in complete["tracks"]]
    assert index.count(SearchFilters(image_id=video_id(KEY))) == 2  # upserted, not doubled


def _written(data: bytes) -> Any:
    def make(path: Path) -> Path:
        path.write_bytes(data)
        return path

    return make


def _no_face_clip(path: Path) -> Path:
    return write_clip(path, [], seconds=2)


@pytest.mark.parametrize(
    ("make", "error_type"),
    [
        (_written(b""), "EmptyVideo"),
        (_written(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40), "CorruptVideo"),
        (_no_face_clip, "NoFaces"),
    ],
    ids=["zero-length", "corrupt", "no-faces"],
)
def test_bad_videos_fail_alone_with_a_reason(
    make: Any, error_type: str, engine: InsightFaceEngine, index: EmbeddedIndex, tmp_path: Path
) -> None:
    outputs = LocalStorage(tmp_path / "out")
    path = make(tmp_path / "bad.mp4")
    with pytest.raises(VideoRejectedError) as raised:
        run(path, engine, index, outputs)
    assert raised.value.error_type == error_type
    stored = json.loads(outputs.get(PREFIX + RESULT_NAME))
    assert stored["status"] == "failed" and stored["error_type"] == error_type and stored["reason"]


def test_truncated_over_long_and_unsupported_videos_are_refused(
    clip: Path, engine: InsightFaceEngine, index: EmbeddedIndex, tmp_path: Path
) -> None:
    outputs = LocalStorage(tmp_path / "out")
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])  # mp4v's index is at the end
    with pytest.raises(VideoRejectedError) as raised:
        run(truncated, engine, index, outputs)
    assert raised.value.error_type == "CorruptVideo"
    with pytest.raises(VideoRejectedError) as raised:
        run(clip, engine, index, outputs, max_seconds=3)
    assert raised.value.error_type == "VideoTooLong" and "5 s" in raised.value.reason
    text = tmp_path / "clip.txt"
    text.write_bytes(clip.read_bytes())
    with pytest.raises(VideoRejectedError) as raised:
        run(text, engine, index, outputs)
    assert raised.value.error_type == "UnsupportedVideo"


def _wait_video(client: Any, video_job_id: str) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for _ in range(600):  # bounded: 60 s at most
        body = client.get(f"/videos/{video_job_id}").json()  # a resumed job may not be queued yet: 404
        if body.get("status") in ("succeeded", "failed"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"video job {video_job_id} not finished: {body}")


def test_videos_route_processes_a_stored_video_and_search_names_the_time_ranges(
    client: Any, clip: Path, crops: list[np.ndarray], tmp_path: Path
) -> None:
    key = "incoming/route clip.mp4"
    storage = LocalStorage(tmp_path / "images")  # the app's storage (app_settings' local_storage_dir)
    storage.put(key, clip.read_bytes())
    accepted = client.post("/videos", json={"key": key})
    assert accepted.status_code == 202, accepted.text
    done = _wait_video(client, accepted.json()["video_job_id"])
    assert done["status"] == "succeeded", done
    assert done["progress"]["segments_done"] == done["progress"]["segments"] == 1
    assert len(done["result"]["tracks"]) == 2
    assert storage.get(done["result_prefix"] + RESULT_NAME)
    _, still = cv2.imencode(".jpg", crops[0])
    found = client.post(
        "/search", files={"file": ("still.jpg", still.tobytes(), "image/jpeg")}, data={"k": "1"}
    )
    assert found.status_code == 200, found.text
    (match,) = found.json()["queries"][0]["matches"]
    assert match["storage_key"] == f"{key}#t=0,1.5;3.5,4.5"


def test_videos_route_refuses_with_reasons(client: Any, tmp_path: Path) -> None:
    assert client.post("/videos", json={"key": "incoming/notes.txt"}).status_code == 422
    missing = _wait_video(
        client, client.post("/videos", json={"key": "incoming/none.mp4"}).json()["video_job_id"]
    )
    assert missing["status"] == "failed" and missing["error_type"] == "InputNotFound"
    LocalStorage(tmp_path / "images").put("incoming/empty.mp4", b"")
    empty = _wait_video(
        client, client.post("/videos", json={"key": "incoming/empty.mp4"}).json()["video_job_id"]
    )
    assert empty["status"] == "failed" and empty["error_type"] == "EmptyVideo"


def test_videos_route_refuses_keys_outside_the_storage(client: Any) -> None:
    refused = client.post("/videos", json={"key": "../outside.mp4"})
    assert refused.status_code == 422, refused.text


def test_a_running_video_counts_as_work_for_the_idle_stopper(client: Any, clip: Path, tmp_path: Path) -> None:
    LocalStorage(tmp_path / "images").put("incoming/busy.mp4", clip.read_bytes())
    service = client.app.state.runtime.service
    busy: list[int] = []
    original = service.index.add

    def add_while_watching(records: Any) -> None:  # called inside the video's processing
        busy.append(client.get("/health").json()["jobs_in_progress"])
        original(records)

    service.index.add = add_while_watching
    try:
        submit = client.post("/videos", json={"key": "incoming/busy.mp4"})
        assert _wait_video(client, submit.json()["video_job_id"])["status"] == "succeeded"
    finally:
        service.index.add = original
    assert busy == [1]
    assert client.get("/health").json()["jobs_in_progress"] == 0


def test_a_video_accepted_before_a_restart_is_resumed_by_the_next_start(
    make_client: Any, clip: Path, tmp_path: Path
) -> None:
    """The instance stops (Spot interruption) after the app accepted a video and before its result:
    the next start finds the stored request without a result and processes it."""
    storage = LocalStorage(tmp_path / "images")
    storage.put("incoming/interrupted.mp4", clip.read_bytes())
    first = make_client()  # the app that accepted the video: its request is stored, then it stops
    prefix = f"upload_with_embed/videos/{video_id('incoming/interrupted.mp4')}/"
    request = {"video_job_id": "before-restart", "key": "incoming/interrupted.mp4", "collection": "default"}
    storage.put(prefix + "request.json", json.dumps(request | {"sample_rate": 2.0}).encode())
    assert first.app.state.runtime.state == "ready"
    second = make_client()  # the restart
    done = _wait_video(second, "before-restart")
    assert done["status"] == "succeeded", done
    assert json.loads(storage.get(prefix + RESULT_NAME))["status"] == "succeeded"
