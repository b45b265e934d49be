"""The HTTP API over the real model, local storage and the embedded index (ASGI test client)."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.gpu_app.conftest import runtime_of
from tests.support.images import blank_jpeg, iou, png_header_only, sample_bytes, variants

THRESHOLD = 0.6  # offline_sc's default


def upload(client: TestClient, *files: tuple[str, bytes], **form: str) -> dict:
    response = client.post(
        "/upload-images/", files=[("files", (name, data)) for name, data in files], data=form
    )
    body = response.json()
    body["_status"] = response.status_code
    return body


def test_upload_sample_stores_embeds_and_indexes(client: TestClient, tmp_path: Path) -> None:
    body = upload(client, ("t1.jpg", sample_bytes()))
    assert body["_status"] == 200, body
    assert body["model_pack"] == "offline_sc" and body["embedding_dim"] == 256
    [result] = body["results"]
    assert result["status"] == "ok" and result["indexed"] is True
    assert len(result["faces"]) == 6
    assert result["storage_key"] == f"upload_with_embed/{result['image_id']}/t1.jpg"
    assert (tmp_path / "images" / result["storage_key"]).read_bytes() == sample_bytes()
    assert (tmp_path / "images" / (result["storage_key"] + ".faces.json")).is_file()
    face = result["faces"][0]
    assert len(face["bbox"]) == 4 and len(face["landmarks"]) == 5 and face["det_score"] > 0.5
    health = client.get("/health", params={"verbose": "true"}).json()
    assert health["index"]["count"] == 6


def test_client_paths_are_never_trusted(client: TestClient, tmp_path: Path) -> None:
    body = upload(client, ("../../etc/passwd.jpg", sample_bytes()))
    key = body["results"][0]["storage_key"]
    assert key.endswith("/passwd.jpg") and ".." not in key
    assert (tmp_path / "images" / key).is_file()


def test_variants_find_their_original_face_and_only_it(client: TestClient) -> None:
    original = upload(client, ("t1.jpg", sample_bytes()))["results"][0]["faces"]
    for name, (data, to_variant) in variants().items():
        response = client.post("/search", files={"file": (f"{name}.jpg", data)}, data={"k": "5"})
        assert response.status_code == 200, response.text
        queries = response.json()["queries"]
        assert len(queries) == 6, name
        for query in queries:
            expected = max(original, key=lambda f: iou(to_variant(f["bbox"]), query["bbox"]))
            assert iou(to_variant(expected["bbox"]), query["bbox"]) > 0.5, name
            matches = query["matches"]
            # The same person is top-1 above the threshold; every other person stays below it.
            assert [m["face_id"] for m in matches] == [expected["face_id"]], (name, matches)
            assert matches[0]["similarity"] >= THRESHOLD
        # With the threshold lowered, other people appear and all rank below the true match.
        loose = client.post("/search", files={"file": ("q.jpg", data)}, data={"k": "6", "threshold": "-1"})
        for query in loose.json()["queries"]:
            sims = [m["similarity"] for m in query["matches"]]
            assert len(sims) == 6 and sims == sorted(sims, reverse=True)
            assert sims[0] >= THRESHOLD > sims[1]


def test_search_by_face_id_and_largest_face(client: TestClient) -> None:
    first = upload(client, ("a.jpg", sample_bytes()))["results"][0]
    upload(client, ("flip.jpg", variants()["hflip"][0]))
    face_id = first["faces"][0]["face_id"]
    response = client.post("/search", data={"face_id": face_id, "k": "3"})
    assert response.status_code == 200
    [query] = response.json()["queries"]
    assert query["face_id"] == face_id
    assert [m["face_id"] for m in query["matches"]] != [] and face_id not in [
        m["face_id"] for m in query["matches"]
    ]
    assert query["matches"][0]["image_id"] != first["image_id"]  # the same person in the flipped copy
    largest = client.post("/search", files={"file": ("q.jpg", sample_bytes())}, data={"faces": "largest"})
    assert len(largest.json()["queries"]) == 1
    assert client.post("/search", data={"face_id": "nope"}).status_code == 404
    assert client.post("/search", data={"k": "3"}).status_code == 422


def test_collections_filter_search(client: TestClient) -> None:
    upload(client, ("a.jpg", sample_bytes()), collection="team-a")
    hits = client.post("/search", files={"file": ("q.jpg", sample_bytes())}, data={"collection": "team-b"})
    assert all(q["matches"] == [] for q in hits.json()["queries"])
    hits = client.post("/search", files={"file": ("q.jpg", sample_bytes())}, data={"collection": "team-a"})
    assert all(len(q["matches"]) == 1 for q in hits.json()["queries"])


def test_get_face_and_image_then_delete_removes_everything(client: TestClient, tmp_path: Path) -> None:
    result = upload(client, ("t1.jpg", sample_bytes()))["results"][0]
    image_id, face_id = result["image_id"], result["faces"][0]["face_id"]
    face = client.get(f"/faces/{face_id}", params={"include_embedding": "true"}).json()
    assert face["image_id"] == image_id and len(face["embedding"]) == 256
    assert "embedding" not in client.get(f"/faces/{face_id}").json()
    image = client.get(f"/images/{image_id}").json()
    assert image["original_name"] == "t1.jpg" and len(image["faces"]) == 6

    deleted = client.delete(f"/images/{image_id}")
    assert deleted.status_code == 200 and deleted.json()["deleted_vectors"] == 6
    assert not (tmp_path / "images" / result["storage_key"]).exists()
    assert list((tmp_path / "images").rglob("*.json")) == []
    assert client.get(f"/faces/{face_id}").status_code == 404
    assert client.get(f"/images/{image_id}").status_code == 404
    assert client.delete(f"/images/{image_id}").status_code == 404
    assert client.get("/health", params={"verbose": "true"}).json()["index"]["count"] == 0


def test_reindex_from_sidecars_restores_identical_results(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    from gpu_app.cli import main

    client = make_client()
    upload(client, ("t1.jpg", sample_bytes()), ("flip.jpg", variants()["hflip"][0]))
    query = {"file": ("q.jpg", variants()["rescaled"][0])}
    before = client.post("/search", files=query, data={"k": "4", "threshold": "-1"}).json()
    client.__exit__(None, None, None)

    for path in (tmp_path / "index").iterdir():
        path.unlink()
    env = {
        "MODEL_PACK": "offline_sc",
        "LOCAL_STORAGE_DIR": str(tmp_path / "images"),
        "INDEX_DIR": str(tmp_path / "index"),
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        assert main(["reindex"]) == 0

    after = make_client().post("/search", files=query, data={"k": "4", "threshold": "-1"}).json()
    assert after == before


@pytest.mark.parametrize(
    ("name", "data", "status", "reason"),
    [
        ("empty.jpg", b"", 422, "empty file"),
        ("notes.jpg", b"hello, I am text\n" * 10, 422, "not a recognised image"),
        ("cut.jpg", sample_bytes()[:5000], 422, "truncated"),
        ("dot.png", None, 422, "smaller than"),
        ("bomb.png", png_header_only(50_000, 50_000), 413, "above the limit"),
    ],
)
def test_bad_files_fail_alone_with_a_reason(
    client: TestClient, name: str, data: bytes | None, status: int, reason: str
) -> None:
    if data is None:
        from PIL import Image

        from tests.support.images import encode

        data = encode(Image.new("RGB", (1, 1)), "PNG")
    alone = upload(client, (name, data))
    assert alone["_status"] == status
    assert reason in alone["results"][0]["error"]["reason"]
    mixed = upload(client, (name, data), ("good.jpg", sample_bytes()))
    assert mixed["_status"] == 207
    bad, good = mixed["results"]
    assert bad["status"] == "error" and bad["error"]["status"] == status
    assert good["status"] == "ok" and len(good["faces"]) == 6
    assert client.get("/ready").status_code == 200  # the worker survived


def test_wrong_field_name_and_limits(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_files_per_request=2, max_upload_bytes=50_000)
    wrong = client.post("/upload-images/", files=[("file", ("a.jpg", sample_bytes()))])
    assert wrong.status_code == 422 and "files" in wrong.text
    too_many = upload(client, *[(f"{i}.jpg", blank_jpeg(seed=i)) for i in range(3)])
    assert too_many["_status"] == 413 and "MAX_FILES_PER_REQUEST" in too_many["detail"]
    too_big = upload(client, ("big.jpg", sample_bytes()))
    assert too_big["_status"] == 413 and "MAX_UPLOAD_BYTES" in too_big["results"][0]["error"]["reason"]


def test_no_face_image_is_stored_with_zero_faces(client: TestClient) -> None:
    body = upload(client, ("blank.jpg", blank_jpeg()))
    assert body["_status"] == 200 and body["results"][0]["faces"] == []


def test_fifty_concurrent_uploads_are_all_stored_and_indexed(client: TestClient, tmp_path: Path) -> None:
    from PIL import Image

    from tests.support.images import encode, sample_image

    base = sample_image().resize((512, 341))
    # 50 distinct images (distinct bytes -> distinct image ids), each with the 6 faces.
    images = [encode(base, quality=60 + i % 40, comment=f"copy {i}".encode()) for i in range(50)]
    assert len(set(images)) == 50
    Image.open  # noqa: B018 - keeps the import used for readers of this test

    def send(i: int) -> dict:
        return upload(client, (f"img{i}.jpg", images[i]))

    with ThreadPoolExecutor(max_workers=16) as pool:
        bodies = list(pool.map(send, range(50)))
    accepted = [b for b in bodies if b["_status"] == 200]
    assert len(accepted) == 50
    faces = sum(len(b["results"][0]["faces"]) for b in accepted)
    health = client.get("/health", params={"verbose": "true"}).json()
    assert health["index"]["count"] == faces > 0
    assert len(list((tmp_path / "images").rglob("*.faces.json"))) == 50


def test_process_keys_already_in_storage(client: TestClient, tmp_path: Path) -> None:
    (tmp_path / "images" / "inbox").mkdir(parents=True)
    (tmp_path / "images" / "inbox" / "t1.jpg").write_bytes(sample_bytes())
    response = client.post("/process", json={"files": ["inbox/t1.jpg", "inbox/missing.jpg", "../x.jpg"]})
    assert response.status_code == 207
    ok, missing, unsafe = response.json()["results"]
    assert ok["status"] == "ok" and len(ok["faces"]) == 6 and ok["storage_key"] == "inbox/t1.jpg"
    assert missing["error"]["status"] == 404
    assert unsafe["error"]["status"] == 400
    assert client.post("/process", json={"files": []}).status_code == 422


def test_async_upload_job_reports_progress_and_results(client: TestClient) -> None:
    response = client.post(
        "/upload-images/",
        params={"async": "true"},
        files=[("files", ("t1.jpg", sample_bytes())), ("files", ("bad.jpg", b"nope"))],
    )
    assert response.status_code == 202
    job = response.json()
    assert job["total"] == 2 and job["status_url"].endswith(f"/jobs/{job['job_id']}")
    deadline = time.monotonic() + 60
    unfinished = ("queued", "running", "retrying")
    while (state := client.get(f"/jobs/{job['job_id']}").json())["status"] in unfinished:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert state["status"] == "succeeded" and state["done"] == 2
    assert state["succeeded"] == 1 and state["failed"] == 1
    assert len(state["results"][0]["faces"]) == 6
    assert client.get("/jobs/unknown").status_code == 404


def test_full_job_queue_answers_429(make_client: Callable[..., TestClient]) -> None:
    client = make_client(job_workers=1, job_queue_size=1)
    jobs = runtime_of(client).jobs
    assert jobs is not None
    jobs.stop()  # no worker drains the queue: the second job cannot fit
    first = client.post("/upload-images/?async=true", files=[("files", ("a.jpg", blank_jpeg()))])
    second = client.post("/upload-images/?async=true", files=[("files", ("b.jpg", blank_jpeg(seed=1)))])
    assert first.status_code == 202
    assert second.status_code == 429 and second.headers["retry-after"]


def test_api_key_required_except_health_and_metrics(make_client: Callable[..., TestClient]) -> None:
    client = make_client(api_key="s3cret")
    assert client.get("/health").status_code == 200
    assert client.get("/metrics").status_code == 200
    for method, path in [("post", "/search"), ("get", "/faces/x"), ("get", "/test-es"), ("post", "/process")]:
        assert getattr(client, method)(path).status_code == 401, path
    assert upload(client, ("t1.jpg", sample_bytes()))["_status"] == 401
    wrong = client.post(
        "/upload-images/", files=[("files", ("t1.jpg", sample_bytes()))], headers={"X-API-Key": "x"}
    )
    assert wrong.status_code == 401
    right = client.post(
        "/upload-images/", files=[("files", ("t1.jpg", sample_bytes()))], headers={"X-API-Key": "s3cret"}
    )
    assert right.status_code == 200


def test_api_key_from_ssm_parameter(make_client: Callable[..., TestClient], aws_endpoint: str) -> None:
    import boto3

    boto3.client("ssm").put_parameter(Name="/face-embed/dev/api-key", Value="from-ssm", Type="SecureString")
    client = make_client(api_key_ssm_parameter="/face-embed/dev/api-key")
    assert client.get("/test-es").status_code == 401
    assert client.get("/test-es", headers={"X-API-Key": "from-ssm"}).status_code == 200


def test_health_ready_metrics_and_test_es(client: TestClient) -> None:
    upload(client, ("t1.jpg", sample_bytes()))
    health = client.get("/health", params={"verbose": "true"}).json()
    assert health["status"] == "ok" and health["ready"] is True
    assert health["model"]["providers"] == {
        "detection": ["CPUExecutionProvider"],
        "recognition": ["CPUExecutionProvider"],
    }
    assert health["model"]["embedding_dim"] == 256 and health["model"]["match_threshold"] == THRESHOLD
    assert health["storage"]["ok"] and health["index"]["ok"]
    assert 0 <= health["idle_seconds"] < 60 and health["jobs_in_progress"] == 0
    assert client.get("/ready").json() == {"ready": True, "reasons": []}
    metrics = client.get("/metrics").text
    assert "faces_detected_total 6.0" in metrics
    assert 'http_requests_total{method="POST",route="/upload-images/",status="200"} 1.0' in metrics
    assert "inference_duration_seconds_bucket" in metrics
    es = client.get("/test-es").json()
    assert es["ok"] is True and es["backend"] == "embedded" and es["count"] == 6


def test_require_gpu_refuses_readiness_on_cpu(make_client: Callable[..., TestClient]) -> None:
    client = make_client(require_gpu=True)
    ready = client.get("/ready")
    assert ready.status_code == 503 and "REQUIRE_GPU" in ready.json()["reasons"][0]
    assert client.get("/health", params={"verbose": "true"}).json()["status"] == "degraded"
    assert upload(client, ("t1.jpg", sample_bytes()))["_status"] == 503


def test_openapi_documents_the_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/upload-images/",
        "/process",
        "/search",
        "/faces/{face_id}",
        "/images/{image_id}",
        "/jobs/{job_id}",
    ):
        assert path in paths


def test_terraform_placeholder_api_key_is_refused(
    make_client: Callable[..., TestClient], aws_endpoint: str
) -> None:
    import boto3

    from gpu_app.runtime import TERRAFORM_PLACEHOLDER_PREFIX
    from tests.terraform.tfconfig import TERRAFORM_DIR, load_module

    module = load_module(TERRAFORM_DIR / "modules" / "api_key")
    placeholder = module.variables["placeholder_value"]["default"]
    assert placeholder.startswith(TERRAFORM_PLACEHOLDER_PREFIX)  # the two sides agree
    name = "/face-embed/dev/api-key"
    boto3.client("ssm").put_parameter(Name=name, Value=placeholder, Type="SecureString")
    with pytest.raises(RuntimeError, match="aws ssm put-parameter"):
        make_client(api_key_ssm_parameter=name)
