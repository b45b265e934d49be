"""Upload and forget, in the local stack Terraform applied: `aws s3 cp` under `incoming/` is all a
user does; the S3 event reaches the dispatcher, the instance starts and the upload becomes
searchable. A video's person is found by a still of them, with the time ranges they appear in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2

from tests.e2e.conftest import VIDEO_INSTANCE_MAX_BYTES, LocalStack, wait_for
from tests.support.images import sample_bgr
from tests.support.videos import face_crops, write_clip

# Bounded: the instance may have to start first (the app loads the model), then the work itself.
ARRIVAL_TIMEOUT = 240.0


def copy_up(stack: LocalStack, local: Path, key: str) -> None:
    """`aws s3 cp <file> s3://<input bucket>/<key>`: the only thing the user does."""
    stack.cli.run("s3", "cp", str(local), f"s3://{stack.input_bucket}/{key}")


def matches(stack: LocalStack, image: bytes) -> list[dict[str, Any]]:
    """The matches of every face of `image` (none while the app is not up)."""
    if not stack.app_ready():
        return []
    with stack.app() as app:
        answer = app.post("/search", files={"file": ("still.jpg", image, "image/jpeg")}, data={"k": "3"})
    if answer.status_code != 200:
        return []
    return [match for query in answer.json()["queries"] for match in query["matches"]]


def test_an_image_dropped_under_incoming_becomes_searchable(local_stack: LocalStack, tmp_path: Path) -> None:
    photo = tmp_path / "team.jpg"
    cv2.imwrite(str(photo), cv2.flip(sample_bgr(), 1))  # a picture no other test uploads
    copy_up(local_stack, photo, "incoming/team photo.jpg")

    def found() -> list[dict[str, Any]]:
        hits = matches(local_stack, photo.read_bytes())
        return [hit for hit in hits if hit["storage_key"] == "incoming/team photo.jpg"]

    assert len(wait_for(found, ARRIVAL_TIMEOUT, "the uploaded image's faces in /search", interval=2)) == 6


def test_a_video_dropped_under_incoming_is_found_by_a_still_with_its_time_ranges(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    person, other = face_crops([(55, 260, 168, 397), (906, 59, 1011, 206)])  # two faces of t1.jpg
    # The person is seen from 0 to 2 s, leaves, and is back from 3.5 s to the end (5 s).
    clip = write_clip(
        tmp_path / "clip.mp4", [(person, [(0.0, 2.0), (3.5, 5.0)]), (other, [(1.0, 4.0)])], seconds=5
    )
    assert clip.stat().st_size <= VIDEO_INSTANCE_MAX_BYTES  # short: the instance's POST /videos
    copy_up(local_stack, clip, "incoming/clip.mp4")
    _, still = cv2.imencode(".jpg", person)  # a still of the person, from the photo

    def found() -> list[dict[str, Any]]:
        hits = matches(local_stack, still.tobytes())
        return [hit for hit in hits if hit["storage_key"].startswith("incoming/clip.mp4#t=")]

    hits = wait_for(found, ARRIVAL_TIMEOUT, "the video's person in /search", interval=2)
    # Sampled at 2 frames/s: seen at 0-1.5 s and 3.5-4.5 s.
    assert hits[0]["storage_key"] == "incoming/clip.mp4#t=0,1.5;3.5,4.5"


def test_a_long_video_dropped_under_incoming_runs_as_a_batch_video_job(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    """Above VIDEO_INSTANCE_MAX_BYTES the dispatcher submits a Batch `video` job, which the local
    executor runs; its tracks land in the same index, and /search names the time ranges."""
    person, other = face_crops([(55, 260, 168, 397), (906, 59, 1011, 206)])
    clip = write_clip(
        tmp_path / "long clip.mp4",
        [(person, [(0.0, 3.0), (6.0, 10.0)]), (other, [(2.0, 8.0)])],
        seconds=10,
        size=(960, 540),
        face_height=200,
    )
    assert clip.stat().st_size > VIDEO_INSTANCE_MAX_BYTES  # long: the Batch route
    key = "incoming/long clip.mp4"
    copy_up(local_stack, clip, key)

    def video_job() -> list[dict[str, Any]]:
        return [
            job
            for job in local_stack.jobs()
            if job["environment"].get("VIDEO_KEY") == key and job["status"] in ("SUCCEEDED", "FAILED")
        ]

    (job,) = wait_for(video_job, ARRIVAL_TIMEOUT, "the Batch video job to finish", interval=2)
    assert job["status"] == "SUCCEEDED", job
    assert job["jobQueue"] == local_stack.names["gpu_job_queue"]
    _, still = cv2.imencode(".jpg", person)

    def found() -> list[dict[str, Any]]:
        if not local_stack.app_ready():
            local_stack.start_instance()  # nothing else starts it: the job ran on Batch
        hits = matches(local_stack, still.tobytes())
        return [hit for hit in hits if hit["storage_key"].startswith(f"{key}#t=")]

    hits = wait_for(found, ARRIVAL_TIMEOUT, "the long video's person in /search", interval=2)
    # Sampled at 2 frames/s: seen at 0-2.5 s and 6-9.5 s.
    assert hits[0]["storage_key"] == f"{key}#t=0,2.5;6,9.5"
