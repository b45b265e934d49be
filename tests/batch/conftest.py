"""Fixtures of the Batch job tests: moto buckets, small generated images, the jobs as real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from PIL import Image

from tests.gpu_app.conftest import MODEL_PACK, MODEL_ROOT
from tests.support.images import blank_jpeg, encode, sample_image

REPO = Path(__file__).resolve().parents[2]
INPUT_BUCKET = "ml-input"
OUTPUT_BUCKET = "ml-output"
# Ask for at most this many seconds per job process: a hang fails the test instead of the suite.
PROCESS_TIMEOUT = 240


def face_images() -> dict[str, bytes]:
    """Distinct encodings of the sample group photo (6 faces), at most 400 px wide to keep the model fast."""
    base = sample_image().resize((400, 277), Image.Resampling.LANCZOS)
    return {
        "a_original.jpg": encode(base, quality=90),
        "b_hflip.jpg": encode(base.transpose(Image.Transpose.FLIP_LEFT_RIGHT), quality=90),
        "c_small.JPG": encode(base.resize((320, 222), Image.Resampling.LANCZOS), quality=90),
        "d_q40.jpeg": encode(base, quality=40),
        "e_gray.jpg": encode(base.convert("L"), quality=90),
        "f_left_half.png": encode(base.crop((0, 0, 200, 277)), "PNG"),
        "g_q70.webp": encode(base, "WEBP", quality=70),
        "g_tilted.jpg": encode(base.rotate(8, Image.Resampling.BICUBIC, fillcolor=(90, 90, 90)), quality=85),
    }


def blank_images() -> dict[str, bytes]:
    return {f"h_blank{seed}.jpg": blank_jpeg(320, 240, seed=seed) for seed in (1, 2, 3)}


def corrupt_image() -> dict[str, bytes]:
    data = encode(sample_image().resize((400, 277)), quality=90)
    return {"i_corrupt.jpg": data[: len(data) // 2]}  # a truncated JPEG: the header reads, the data not


@dataclass
class Buckets:
    s3: Any

    def put(self, key: str, data: bytes, bucket: str = INPUT_BUCKET) -> None:
        self.s3.put_object(Bucket=bucket, Key=key, Body=data)

    def get(self, key: str, bucket: str = OUTPUT_BUCKET) -> bytes:
        return bytes(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    def exists(self, key: str, bucket: str = OUTPUT_BUCKET) -> bool:
        return bool(self.s3.list_objects_v2(Bucket=bucket, Prefix=key).get("KeyCount"))

    def keys(self, prefix: str, bucket: str = OUTPUT_BUCKET) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def jsonl(self, key: str) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.get(key).decode().splitlines() if line.strip()]

    def json(self, key: str) -> Any:
        return json.loads(self.get(key))


@pytest.fixture
def buckets(aws_endpoint: str) -> Buckets:
    s3 = boto3.client("s3", region_name="us-east-1")
    for name in (INPUT_BUCKET, OUTPUT_BUCKET):
        s3.create_bucket(Bucket=name)
    return Buckets(s3)


JobEnv = Callable[..., dict[str, str]]


@pytest.fixture
def job_env(aws_endpoint: str, tmp_path: Path) -> JobEnv:
    """The environment a job container gets (dispatcher + Terraform), against moto and the offline model."""

    def make(**overrides: str | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_BATCH_", "PYTEST_"))}
        env.update(
            {
                "PYTHONPATH": str(REPO),
                "ML_INPUT_BUCKET": INPUT_BUCKET,
                "ML_OUTPUT_BUCKET": OUTPUT_BUCKET,
                "COMPUTE_TYPE": "cpu",
                "TRIGGER_USER": "alice",
                "TRIGGER_PROJECT": "faces",
                "TRIGGER_EXPERIMENT": "exp-1",
                "MODEL_ROOT": str(MODEL_ROOT),
                "MODEL_PACK": MODEL_PACK,
                "EXECUTION_PROVIDER": "cpu",
                "INTRA_OP_THREADS": "1",  # two children share the machine's cores
                "VECTOR_INDEX": "embedded",
                "INDEX_DIR": str(tmp_path / "index"),
                "RETRY_BACKOFF": "0.1",
            }
        )
        for name in ("INPUT_PREFIX", "MANIFEST_KEY", "S3_BUCKET_NAME", "STORAGE_BACKEND"):
            env.pop(name, None)
        for name, value in overrides.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        return env

    return make


def start_job(command: str, env: Mapping[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "gpu_app.batch", command],
        env=dict(env),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def run_job(command: str, env: Mapping[str, str], cwd: Path) -> tuple[int, str]:
    proc = start_job(command, env, cwd)
    output, _ = proc.communicate(timeout=PROCESS_TIMEOUT)
    return proc.returncode, output
