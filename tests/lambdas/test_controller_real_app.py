"""`start_and_process` against the real face service (its own process, S3 storage in moto)."""

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
from tests.lambdas.resources import Stack
from tests.support.images import blank_jpeg, sample_bytes
from tests.support.live_app import app_env, live_app


def test_start_and_process_with_the_real_app(
    stack: Stack, configure: Configure, context: Callable[..., LambdaContext], tmp_path: Path
) -> None:
    s3 = boto3.client("s3")
    s3.put_object(Bucket=stack.input_bucket, Key="photos/t1.jpg", Body=sample_bytes())
    s3.put_object(Bucket=stack.input_bucket, Key="photos/blank.jpg", Body=blank_jpeg())
    boto3.client("ec2").stop_instances(InstanceIds=[stack.instance_id])
    # The app reads its API key from the same SSM parameter the controller forwards it from.
    env = app_env(
        tmp_path,
        API_KEY_SSM_PARAMETER=stack.api_key_parameter,
        STORAGE_BACKEND="s3",
        S3_BUCKET_NAME=stack.input_bucket,
        AWS_ENDPOINT_URL=os.environ["AWS_ENDPOINT_URL"],
    )
    with live_app(env) as url:
        configure("controller", APP_URL_OVERRIDE=url)
        result = lambda_handler(
            {
                "action": "start_and_process",
                "payload": {"files": ["photos/t1.jpg", "photos/blank.jpg", "x.jpg"]},
            },
            context("controller"),
        )
    assert (result["previous_state"], result["state"]) == ("stopped", "running")
    assert (result["http_status"], result["succeeded"], result["failed"]) == (207, 2, 1)
    t1, blank, missing = result["results"]
    assert len(t1["faces"]) == 6 and t1["storage_key"] == "photos/t1.jpg" and t1["indexed"] is True
    assert blank["faces"] == []
    assert missing["error"]["status"] == 404
    sidecars = s3.list_objects_v2(Bucket=stack.input_bucket, Prefix="upload_with_embed/")["Contents"]
    assert sorted(item["Key"].rsplit("/", 1)[-1] for item in sidecars) == [
        "blank.jpg.faces.json",
        "faces.thumbs",  # t1's face thumbnails (the blank image has no face)
        "t1.jpg.faces.json",
    ]


def test_the_controller_follows_the_real_apps_limit_statuses_and_key_rotation(
    stack: Stack, configure: Configure, context: Callable[..., LambdaContext], tmp_path: Path
) -> None:
    """One contract across both sides: the app publishes its file limit and the controller splits by
    it; a batch whose files all fail with 404 is a final answer; both read the key from SSM alike
    (a trailing newline) and a rotation reaches both without a restart."""
    s3, ssm = boto3.client("s3"), boto3.client("ssm")
    s3.put_object(Bucket=stack.input_bucket, Key="photos/t1.jpg", Body=sample_bytes())
    s3.put_object(Bucket=stack.input_bucket, Key="photos/blank.jpg", Body=blank_jpeg())
    files = ["photos/t1.jpg", "photos/blank.jpg", *(f"missing/{n}.jpg" for n in range(248))]
    ssm.put_parameter(Name=stack.api_key_parameter, Value="first-key\n", Type="SecureString", Overwrite=True)
    env = app_env(
        tmp_path,
        API_KEY_SSM_PARAMETER=stack.api_key_parameter,
        API_KEY_REFRESH_SECONDS="0.5",
        MAX_FILES_PER_REQUEST="60",  # not the controller's fallback of 100: it must read the app's
        STORAGE_BACKEND="s3",
        S3_BUCKET_NAME=stack.input_bucket,
        AWS_ENDPOINT_URL=os.environ["AWS_ENDPOINT_URL"],
    )
    with live_app(env) as url:
        configure("controller", APP_URL_OVERRIDE=url)

        def invoke(keys: list[str]) -> dict[str, Any]:
            event = {"action": "start_and_process", "payload": {"files": keys}}
            return dict(lambda_handler(event, context("controller")))

        result = invoke(files)

        assert (result["requests"], result["files_per_request"]) == (5, 60)
        assert [item["file"] for item in result["results"]] == files
        assert (result["http_status"], result["succeeded"], result["failed"]) == (207, 2, 248)
        assert {item["error"]["status"] for item in result["results"][2:]} == {404}

        ssm.put_parameter(
            Name=stack.api_key_parameter, Value="second-key", Type="SecureString", Overwrite=True
        )
        deadline = time.monotonic() + 30
        second = {"X-API-Key": "second-key"}
        while requests.get(f"{url}/jobs/none", headers=second, timeout=5).status_code == 401:
            assert time.monotonic() < deadline, "the app did not take the rotated key"
            time.sleep(0.1)

        again = invoke(["photos/t1.jpg"])  # this warm container still holds the first key

    assert (again["http_status"], again["succeeded"], again["requests"]) == (200, 1, 2)
