"""One bad image fails alone: in the batching engine, in a multi-image request, in a job, in /search.

The hostile input is real: a strip so elongated that SCRFD's letterbox (longest side scaled to
det_size) leaves less than one pixel on its short side, and OpenCV's resize asserts. The model is the
real offline pack throughout.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from gpu_app.engine.base import DetectedFace, FaceEngine, ImageFaces, ImageRejectedError
from gpu_app.engine.insightface_engine import InsightFaceEngine
from gpu_app.engine.microbatch import MicroBatchingEngine
from tests.support.images import encode, sample_bgr, sample_bytes, sample_image

# 16 px high (MIN_IMAGE_SIDE) but 12000 px long: at det_size 640 the letterbox is 640x0.
STRIP = (16, 12000)


@pytest.fixture(scope="module")
def t1() -> np.ndarray:
    return sample_bgr()


def strip_png(height: int = STRIP[0], width: int = STRIP[1]) -> bytes:
    return encode(sample_image().resize((width, height)), "PNG")


def hostile_array() -> np.ndarray:
    return np.full((*STRIP, 3), 127, dtype=np.uint8)


class GatedEngine:
    """The real engine, but its first round (a lone gate request) waits for `open`, so the callers
    submitted meanwhile all pile up into the next round."""

    def __init__(self, engine: FaceEngine) -> None:
        self._engine = engine
        self.info = engine.info
        self.holding = threading.Event()
        self.open = threading.Event()
        self.rounds: list[int] = []

    def analyze(self, images: Sequence[np.ndarray]) -> list[list]:
        return self._engine.analyze(images)

    def analyze_each(self, images: Sequence[np.ndarray]) -> list[ImageFaces]:
        if not self.rounds:
            self.holding.set()
            self.open.wait(600)
        self.rounds.append(len(images))
        return self._engine.analyze_each(images)


def test_engine_reports_the_failing_image_in_its_own_slot(engine: InsightFaceEngine, t1: np.ndarray) -> None:
    results = engine.analyze_each([t1, hostile_array(), t1])
    assert [len(r) for r in (results[0], results[2])] == [6, 6]  # type: ignore[arg-type]
    assert isinstance(results[1], ImageRejectedError)
    assert "12000x16" in str(results[1]) and "det_size 640" in str(results[1])
    with pytest.raises(ImageRejectedError):
        engine.analyze([t1, hostile_array()])


@pytest.mark.parametrize("shape", [(1, 700), (700, 1), (16, 10300), (10300, 16), (30, 20000)])
def test_engine_refuses_every_shape_its_letterbox_cannot_hold(
    engine: InsightFaceEngine, shape: tuple[int, int]
) -> None:
    result = engine.analyze_each([np.full((*shape, 3), 127, np.uint8)])[0]
    assert isinstance(result, ImageRejectedError)


def test_one_hostile_caller_among_thirty_fails_alone(engine: InsightFaceEngine, t1: np.ndarray) -> None:
    gated = GatedEngine(engine)
    batching = MicroBatchingEngine(gated)
    expected = engine.analyze([t1])[0]
    try:
        gate = batching.submit([t1])
        assert gated.holding.wait(600), "the gate round never started"
        with ThreadPoolExecutor(max_workers=30) as pool:
            futures = [pool.submit(batching.analyze, [hostile_array() if i == 17 else t1]) for i in range(30)]
            deadline = time.monotonic() + 600
            while batching.waiting < 30:  # every caller queued behind the held gate round
                assert time.monotonic() < deadline, "the callers never queued up"
                time.sleep(0.01)
            gated.open.set()
            outcomes: list[list[list[DetectedFace]] | Exception] = []
            for future in futures:
                try:
                    outcomes.append(future.result(600))
                except Exception as exc:
                    outcomes.append(exc)
        assert len(gate.result(600)[0]) == 6  # type: ignore[arg-type]
    finally:
        gated.open.set()  # never leave the worker (and the pool's threads) blocked on a failed wait
        batching.close()
    assert gated.rounds == [1, 30]  # the hostile image really shared one round with 29 good ones
    failed = [i for i, outcome in enumerate(outcomes) if isinstance(outcome, Exception)]
    assert failed == [17]
    assert isinstance(outcomes[17], ImageRejectedError)
    for i, outcome in enumerate(outcomes):
        if i != 17:
            assert not isinstance(outcome, Exception)
            assert len(outcome[0]) == 6
            np.testing.assert_allclose(outcome[0][0].embedding, expected[0].embedding, atol=1e-5)


def test_a_multi_image_request_fails_only_its_bad_image(engine: InsightFaceEngine, t1: np.ndarray) -> None:
    batching = MicroBatchingEngine(engine)
    try:
        results = batching.analyze_each([t1, hostile_array(), t1])
        assert len(batching.analyze([t1])[0]) == 6  # the worker still serves
    finally:
        batching.close()
    assert len(results[0]) == 6 and len(results[2]) == 6  # type: ignore[arg-type]
    assert isinstance(results[1], ImageRejectedError)
    assert results[1].__traceback__ is None  # a kept traceback would keep the round's pixels alive


def upload(client: TestClient, *files: tuple[str, bytes], **params: str) -> tuple[int, dict]:
    response = client.post(
        "/upload-images/", files=[("files", (name, data)) for name, data in files], params=params
    )
    return response.status_code, response.json()


@pytest.mark.parametrize("shape", [STRIP, STRIP[::-1], (40, 6000), (6000, 40), (30, 20000)])
def test_elongated_images_are_refused_up_front_with_the_reason(
    client: TestClient, shape: tuple[int, int]
) -> None:
    code, body = upload(client, ("strip.png", strip_png(*shape)))
    assert code == 422
    reason = body["results"][0]["error"]["reason"]
    assert "aspect ratio" in reason and "MIN_IMAGE_SIDE" in reason
    search = client.post("/search", files={"file": ("strip.png", strip_png(*shape))})
    assert search.status_code == 422 and "aspect ratio" in search.json()["detail"]


def test_thirty_concurrent_uploads_with_a_hostile_one(client: TestClient, tmp_path: Path) -> None:
    base = sample_image().resize((512, 341))
    goods = [encode(base, quality=60 + i, comment=f"copy {i}".encode()) for i in range(30)]
    hostile = strip_png()

    def send(i: int) -> tuple[int, dict]:
        if i == 30:
            return upload(client, ("strip.png", hostile))
        return upload(client, (f"good{i}.jpg", goods[i]))

    with ThreadPoolExecutor(max_workers=31) as pool:
        answers = list(pool.map(send, range(31)))
    assert [code for code, _ in answers[:30]] == [200] * 30
    assert answers[30][0] == 422
    assert len(list((tmp_path / "images").rglob("*.faces.json"))) == 30


@pytest.fixture
def loose_client(make_client: Callable[..., TestClient]) -> TestClient:
    """An app whose decode guard is looser than the model (DET_SIZE above the engine's 640), so a
    hostile image reaches inference: what is left is the engine's own isolation."""
    return make_client(det_size=2048, min_image_side=1)


def test_an_image_the_model_fails_on_fails_only_its_file(loose_client: TestClient, tmp_path: Path) -> None:
    code, body = upload(
        loose_client,
        ("a.jpg", sample_bytes()),
        ("strip.png", strip_png(2, 2000)),
        ("b.png", encode(sample_image(), "PNG")),
    )
    assert code == 207, body
    good_a, bad, good_b = body["results"]
    assert good_a["status"] == "ok" and len(good_a["faces"]) == 6
    assert good_b["status"] == "ok" and len(good_b["faces"]) == 6
    assert bad["error"]["status"] == 422 and "det_size 640" in bad["error"]["reason"]
    search = loose_client.post("/search", files={"file": ("strip.png", strip_png(2, 2000))})
    assert search.status_code == 422 and "det_size 640" in search.json()["detail"]


def test_an_async_job_holding_it_stores_the_others(loose_client: TestClient, tmp_path: Path) -> None:
    code, job = upload(
        loose_client,
        ("a.jpg", sample_bytes()),
        ("strip.png", strip_png(2, 2000)),
        ("b.png", encode(sample_image(), "PNG")),
        **{"async": "true"},
    )
    assert code == 202
    deadline = time.monotonic() + 600
    while (state := loose_client.get(f"/jobs/{job['job_id']}").json())["status"] not in (
        "succeeded",
        "failed",
    ):
        assert time.monotonic() < deadline, state
        time.sleep(0.1)
    by_name = {r["file"]: r for r in state["results"]}
    assert by_name["a.jpg"]["status"] == "ok" and by_name["b.png"]["status"] == "ok"
    assert by_name["strip.png"]["error"]["status"] == 422
    assert len(list((tmp_path / "images").rglob("*.faces.json"))) == 2
