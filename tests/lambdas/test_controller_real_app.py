"""`start_and_process` against the real face service (its own process, S3 storage in moto)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import boto3

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
        "t1.jpg.faces.json",
    ]
