"""start_and_process with video keys against the real app (its own process, S3 storage in moto):
videos go to POST /videos, images to /process, in one request; the video becomes searchable tracks."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import requests

from lambdas.controller.handler import lambda_handler
from tests.lambdas.conftest import Configure
from tests.lambdas.events import LambdaContext
from tests.lambdas.resources import API_KEY, Stack
from tests.support.images import sample_bgr, sample_bytes
from tests.support.live_app import app_env, live_app
from tests.support.videos import write_clip


def _wait(url: str, video_job_id: str) -> dict[str, Any]:
    for _ in range(300):  # bounded: 60 s
        body: dict[str, Any] = requests.get(
            f"{url}/videos/{video_job_id}", headers={"X-API-Key": API_KEY}, timeout=10
        ).json()
        if body["status"] in ("succeeded", "failed"):
            return body
        time.sleep(0.2)
    raise AssertionError(f"video job still {body['status']}")


def test_start_and_process_sends_videos_to_the_video_route(
    stack: Stack, configure: Configure, context: Callable[..., LambdaContext], tmp_path: Path
) -> None:
    image = sample_bgr()
    crop = image[250:420, 440:600]  # one face of the sample photo, with a margin
    clip = write_clip(tmp_path / "clip.mp4", [(crop, [(0.0, 1.5)])], seconds=2)
    s3 = boto3.client("s3")
    s3.put_object(Bucket=stack.input_bucket, Key="incoming/clip.mp4", Body=clip.read_bytes())
    s3.put_object(Bucket=stack.input_bucket, Key="incoming/t1.jpg", Body=sample_bytes())
    env = app_env(
        tmp_path,
        API_KEY_SSM_PARAMETER=stack.api_key_parameter,
        STORAGE_BACKEND="s3",
        S3_BUCKET_NAME=stack.input_bucket,
        AWS_ENDPOINT_URL=os.environ["AWS_ENDPOINT_URL"],
    )
    with live_app(env) as url:
        configure("controller", APP_URL_OVERRIDE=url)
        files = ["incoming/clip.mp4", "incoming/t1.jpg", "incoming/missing.mov"]
        result = lambda_handler(
            {"action": "start_and_process", "payload": {"files": files}}, context("controller")
        )
        assert [item["storage_key"] for item in result["results"]] == ["incoming/t1.jpg"]
        submitted, missing = result["videos"]
        assert submitted["key"] == "incoming/clip.mp4" and submitted["status"] == "queued"
        done = _wait(url, submitted["video_job_id"])
        assert done["status"] == "succeeded", done
        (track,) = done["result"]["tracks"]
        assert track["time_ranges"] == [[0.0, 1.0]]
        assert _wait(url, missing["video_job_id"])["error_type"] == "InputNotFound"
        # The track's thumbnail and result are in the app's bucket, under its upload path.
        assert s3.head_object(Bucket=stack.input_bucket, Key=track["thumbnail_key"])
