"""Image storage backends: key safety, the S3 backend over a real moto server, and S3 outages."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest
from fastapi.testclient import TestClient

from gpu_app.storage import (
    InvalidKeyError,
    ObjectNotFoundError,
    StorageError,
    sanitize_filename,
    validate_key,
)
from gpu_app.storage.local import LocalStorage
from gpu_app.storage.s3 import S3Storage
from tests.gpu_app.conftest import service_of
from tests.support.fault_proxy import fault_proxy
from tests.support.images import sample_bytes

BUCKET = "face-embed-dev-ml-input-123456789012"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("photo.jpg", "photo.jpg"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\selfie 1.png", "selfie_1.png"),
        ("émoji😀.jpg", "moji_.jpg"),
        ("", "image"),
        ("..", "image"),
        (None, "image"),
    ],
)
def test_sanitize_filename(name: str | None, expected: str) -> None:
    assert sanitize_filename(name) == expected


@pytest.mark.parametrize(
    "key", ["/abs.jpg", "a/../b.jpg", "a//b.jpg", "s3://other/x.jpg", "a\\b.jpg", "x\x00.jpg", ""]
)
def test_unsafe_keys_are_refused(key: str) -> None:
    with pytest.raises(InvalidKeyError):
        validate_key(key)


def test_plain_keys_pass() -> None:
    assert validate_key("inbox/2026/photo 1.jpg") == "inbox/2026/photo 1.jpg"


def exercise(storage: LocalStorage | S3Storage) -> None:
    storage.put("p/a/one.jpg", b"1", "image/jpeg")
    storage.put("p/a/one.jpg.faces.json", b"{}", "application/json")
    storage.put("p/b/two.jpg", b"22")
    storage.put("q/three.jpg", b"333")
    assert storage.get("p/b/two.jpg") == b"22"
    assert list(storage.list("p/")) == ["p/a/one.jpg", "p/a/one.jpg.faces.json", "p/b/two.jpg"]
    storage.delete("p/a/one.jpg")
    storage.delete("p/a/one.jpg")  # idempotent
    with pytest.raises(ObjectNotFoundError):
        storage.get("p/a/one.jpg")
    assert storage.health()["ok"] is True


def test_local_storage(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    exercise(storage)
    assert not list(tmp_path.rglob(".tmp-*"))


def test_s3_storage_against_moto(aws_endpoint: str) -> None:
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    storage = S3Storage(BUCKET, region="us-east-1", retries=1)
    exercise(storage)
    head = boto3.client("s3").head_object(Bucket=BUCKET, Key="p/b/two.jpg")
    assert head["ContentLength"] == 2
    assert storage.uri("p/b/two.jpg") == f"s3://{BUCKET}/p/b/two.jpg"
    assert S3Storage("missing-bucket-x", retries=0).health()["ok"] is False


def test_short_s3_outage_is_retried_and_the_upload_lands(
    make_client: Callable[..., TestClient], aws_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    with fault_proxy(aws_endpoint) as (proxy_url, proxy):
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy_url)
        client = make_client(storage_backend="s3", s3_bucket_name=BUCKET, storage_retries=4)
        proxy.fail_next = 3  # fewer than the retries
        response = client.post("/upload-images/", files=[("files", ("t1.jpg", sample_bytes()))])
        assert response.status_code == 200, response.text
        assert proxy.failed == 3
    key = response.json()["results"][0]["storage_key"]
    stored = boto3.client("s3", endpoint_url=aws_endpoint).get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert stored == sample_bytes()


def test_long_outage_refuses_sync_upload_and_async_job_retries_until_it_lands(
    make_client: Callable[..., TestClient], aws_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    with fault_proxy(aws_endpoint) as (proxy_url, proxy):
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy_url)
        client = make_client(
            storage_backend="s3", s3_bucket_name=BUCKET, storage_retries=1, job_retry_delay=0.05
        )
        proxy.fail_next = 1000
        refused = client.post("/upload-images/", files=[("files", ("t1.jpg", sample_bytes()))])
        assert refused.status_code == 503 and "retry later" in refused.json()["results"][0]["error"]["reason"]

        proxy.fail_next = 6  # outlasts one attempt (2 requests) but not the job's retries
        accepted = client.post("/upload-images/?async=true", files=[("files", ("t1.jpg", sample_bytes()))])
        assert accepted.status_code == 202
        job_url = f"/jobs/{accepted.json()['job_id']}"
        deadline = time.monotonic() + 60
        while (job := client.get(job_url).json())["status"] in ("queued", "running", "retrying"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert job["status"] == "succeeded" and job["succeeded"] == 1, job
        assert proxy.failed > 2  # the outage was really hit, then outlasted
    key = job["results"][0]["storage_key"]
    s3 = boto3.client("s3", endpoint_url=aws_endpoint)
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == sample_bytes()


def test_storage_error_is_typed(aws_endpoint: str) -> None:
    with pytest.raises(StorageError):
        S3Storage("no-such-bucket-here", retries=0).put("a.jpg", b"x")


def test_s3_image_lookup_lists_only_the_images_folder(
    make_client: Callable[..., TestClient], aws_endpoint: str
) -> None:
    """GET and DELETE /images/{id} ask S3 for the image's own folder, never for the bucket."""
    from tests.support.images import blank_jpeg

    boto3.client("s3").create_bucket(Bucket=BUCKET)
    client = make_client(storage_backend="s3", s3_bucket_name=BUCKET)
    for i in range(3):
        client.post("/upload-images/", files=[("files", (f"{i}.jpg", blank_jpeg(seed=i)))])
    image_id = client.post("/upload-images/", files=[("files", ("t1.jpg", sample_bytes()))]).json()[
        "results"
    ][0]["image_id"]
    listed: list[str] = []
    storage = service_of(client).storage
    assert isinstance(storage, S3Storage)
    s3 = storage._s3  # the app's own client: count what it asks S3

    def record(params: dict[str, str], **_: object) -> None:
        listed.append(params["Prefix"])

    s3.meta.events.register("provide-client-params.s3.ListObjectsV2", record)
    assert client.get(f"/images/{image_id}").json()["original_name"] == "t1.jpg"
    assert client.delete(f"/images/{image_id}").status_code == 200
    assert listed == [f"upload_with_embed/{image_id}/"] * 2


def test_a_hung_s3_leaves_liveness_alone_and_fails_readiness_fast(
    make_client: Callable[..., TestClient], aws_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """S3 that accepts connections and answers nothing: /health (liveness) answers from memory,
    /ready says storage is unavailable within its bound instead of waiting out 30 s read timeouts."""
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    with fault_proxy(aws_endpoint) as (proxy_url, proxy):
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy_url)
        client = make_client(storage_backend="s3", s3_bucket_name=BUCKET)
        proxy.freeze()
        try:
            health = client.get("/health")
            assert health.status_code == 200 and health.json()["ready"] is True
            assert "storage" not in health.json()
            ready = client.get("/ready")
            assert ready.status_code == 503 and ready.json()["reasons"] == ["storage unavailable"]
        finally:
            proxy.thaw()
        # Every request the freeze held is dropped at the thaw: only the one readiness probe.
        deadline = time.monotonic() + 10
        while proxy.dropped < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        assert proxy.dropped == 1
        assert client.get("/ready").status_code == 200
