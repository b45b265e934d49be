"""How an upload flows (issue 18): each image is decoded, inferred, given its thumbnails and stored by
one ingest worker, so its writes overlap the next image's inference, and its pixels are decoded once.
Real model, real local storage and index throughout."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gpu_app import imaging
from gpu_app.people import thumbnails
from gpu_app.service import ingest_workers
from tests.gpu_app.conftest import service_of
from tests.support.images import blank_jpeg, encode, sample_bytes, sample_image


def three_images() -> list[tuple[str, bytes]]:
    return [
        ("t1.jpg", sample_bytes()),
        ("t1.png", encode(sample_image().resize((640, 443)), "PNG")),
        ("none.jpg", blank_jpeg()),
    ]


def test_each_image_is_decoded_once_thumbnails_included(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Thumbnails are cut from the pixels inference ran on, before they are released: the strip
    used to come from a second decode of every image with a face."""
    decodes: list[int] = []
    real = imaging.decode_image

    def counted(data: bytes, **kwargs: Any) -> imaging.DecodedImage:
        decodes.append(len(data))
        return real(data, **kwargs)

    monkeypatch.setattr("gpu_app.service.decode_image", counted)
    monkeypatch.setattr(thumbnails, "decode_image", counted)
    files = three_images()
    response = client.post("/upload-images/", files=[("files", file) for file in files])
    results = response.json()["results"]
    assert [len(r["faces"]) for r in results] == [6, 6, 0]
    assert sorted(decodes) == sorted(len(data) for _, data in files)
    for result in results[:2]:  # every face has its tile in the strip stored at ingest
        for face in result["faces"]:
            assert client.get(f"/faces/{face['face_id']}/thumbnail").status_code == 200
    assert len(decodes) == len(files)  # no strip was missing and made on request


def test_storage_writes_run_on_the_ingest_workers_beside_inference(client: TestClient) -> None:
    """Image, sidecar and thumbnails are written by the worker that decoded the image, as soon as
    its faces are known, so they overlap the inference of the request's other images; they used to
    wait for the whole request's inference and run on the request's thread."""
    service = service_of(client)
    writers: list[str] = []
    put: Callable[..., None] = service.storage.put

    def recorded(key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        writers.append(threading.current_thread().name)
        put(key, data, content_type)

    service.storage.put = recorded  # type: ignore[method-assign]
    try:
        outcomes = service.process_uploads(three_images())
    finally:
        del service.storage.put
    assert all(o.ok for o in outcomes)
    assert len(writers) == 2 * 3 + 2  # image + sidecar each, a strip for each image with faces
    assert all(name.startswith("ingest") for name in writers), writers


def test_ingest_concurrency_follows_the_cores() -> None:
    assert ingest_workers(cuda=False, cores=2) == 2  # one in the model, one decoding or storing
    assert ingest_workers(cuda=False, cores=1) == 2
    assert ingest_workers(cuda=False, cores=16) == 8
    assert ingest_workers(cuda=True, cores=4) == 8
    assert ingest_workers(cuda=True, cores=16) == 32


def test_a_failure_inside_one_images_ingest_fails_that_image_alone(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected error on one image's worker (here while storing the PNG) is that image's 500;
    the request's other images are still stored and indexed instead of the request failing after
    some were stored but none indexed."""
    service = service_of(client)
    store = service._store

    def broken_for_png(w: Any, *args: Any) -> Any:
        if w.name.endswith(".png"):
            raise RuntimeError("disk on fire")
        return store(w, *args)

    monkeypatch.setattr(service, "_store", broken_for_png)
    outcomes = service.process_uploads(three_images())
    assert [o.ok for o in outcomes] == [True, False, True]
    assert outcomes[1].error is not None and outcomes[1].error.status == 500
    assert outcomes[1].error.reason == "internal error processing this file"  # details: the log
    assert outcomes[0].indexed and outcomes[2].indexed
    assert service.index.get(outcomes[0].faces[0].face_id) is not None


def test_thumbnails_that_cannot_be_made_never_cost_the_image(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Thumbnails are best effort, whatever fails in them (cv2.error is no ValueError): the image is
    stored and indexed, and its strip is made on the first request of a face."""
    import cv2

    def broken(*args: Any) -> bytes:
        raise cv2.error("encoder gone")

    monkeypatch.setattr("gpu_app.service.strip_of", broken)
    response = client.post("/upload-images/", files=[("files", ("t1.jpg", sample_bytes()))])
    (result,) = response.json()["results"]
    assert result["indexed"] and len(result["faces"]) == 6
    monkeypatch.undo()
    assert client.get(f"/faces/{result['faces'][0]['face_id']}/thumbnail").status_code == 200
