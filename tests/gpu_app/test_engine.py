"""The real model pack: detection, batched recognition, providers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from gpu_app.config import Settings
from gpu_app.engine.base import EngineError, EngineInfo
from gpu_app.engine.insightface_engine import CPU, CUDA, InsightFaceEngine, select_providers
from tests.gpu_app.conftest import MODEL_PACK, MODEL_ROOT
from tests.support.images import sample_bgr


def counting(
    calls: list[int], get_feat: Callable[[list[np.ndarray]], np.ndarray]
) -> Callable[[list[np.ndarray]], np.ndarray]:
    """`get_feat` that records the number of crops of each call in `calls`."""

    def counted(crops: list[np.ndarray]) -> np.ndarray:
        calls.append(len(crops))
        return get_feat(crops)

    return counted


@pytest.fixture(scope="module")
def t1() -> np.ndarray:
    return sample_bgr()


def test_sample_yields_six_faces_with_model_dimension(engine: InsightFaceEngine, t1: np.ndarray) -> None:
    faces = engine.analyze([t1])[0]
    assert len(faces) == 6
    for face in faces:
        assert face.embedding.shape == (engine.info.embedding_dim,)
        assert face.embedding.dtype == np.float32
        assert abs(float(np.linalg.norm(face.embedding)) - 1.0) < 1e-5
        assert len(face.landmarks) == 5
        assert 0.5 <= face.det_score <= 1.0
        x1, y1, x2, y2 = face.bbox
        assert 0 <= x1 < x2 <= t1.shape[1] and 0 <= y1 < y2 <= t1.shape[0]


def test_dimension_comes_from_the_model_not_a_constant(engine: InsightFaceEngine) -> None:
    assert engine.info.embedding_dim == 256  # offline_sc's recognizer; buffalo_l would give 512
    assert engine.info.model_pack == MODEL_PACK


def test_batched_recognition_equals_insightface_per_face(engine: InsightFaceEngine, t1: np.ndarray) -> None:
    from insightface.app import FaceAnalysis

    stock = FaceAnalysis(
        name=MODEL_PACK, root=str(MODEL_ROOT), providers=[CPU], allowed_modules=["detection", "recognition"]
    )
    stock.prepare(ctx_id=-1, det_size=(640, 640))
    reference = sorted(stock.get(t1), key=lambda f: float(f.bbox[0]))
    ours = sorted(engine.analyze([t1])[0], key=lambda f: f.bbox[0])
    assert len(ours) == len(reference)
    for mine, theirs in zip(ours, reference, strict=True):
        np.testing.assert_allclose(mine.bbox, theirs.bbox, atol=1e-3)
        np.testing.assert_allclose(mine.embedding, theirs.normed_embedding, atol=1e-4)


def test_one_recognition_call_per_batch(
    engine: InsightFaceEngine, t1: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    recognizer = engine._recognizer
    original = recognizer.get_feat
    monkeypatch.setattr(recognizer, "get_feat", counting(calls, original))
    results = engine.analyze([t1, t1[:, ::-1].copy(), t1])
    assert [len(r) for r in results] == [6, 6, 6]
    assert calls == [18]  # all faces of all three images in one model call


def test_images_without_faces_give_empty_lists(engine: InsightFaceEngine) -> None:
    blank = np.full((200, 300, 3), 127, dtype=np.uint8)
    assert engine.analyze([blank]) == [[]]


def test_providers_applied_are_reported(engine: InsightFaceEngine) -> None:
    assert engine.info.applied_providers == {"detection": [CPU], "recognition": [CPU]}
    assert engine.info.cuda is False


def test_provider_selection() -> None:
    assert select_providers("auto", [CUDA, CPU]) == [CUDA, CPU]
    assert select_providers("auto", [CPU]) == [CPU]
    assert select_providers("cpu", [CUDA, CPU]) == [CPU]
    with pytest.raises(EngineError, match="onnxruntime-gpu"):
        select_providers("cuda", ["AzureExecutionProvider", CPU])


def test_cuda_is_true_only_when_every_session_applied_it() -> None:
    def info(applied: dict[str, list[str]]) -> EngineInfo:
        return EngineInfo("p", 512, (640, 640), [CUDA, CPU], applied)

    assert info({"detection": [CUDA, CPU], "recognition": [CUDA, CPU]}).cuda
    # onnxruntime-gpu with a CUDA/cuDNN mismatch silently falls back to CPU for a session:
    assert not info({"detection": [CUDA, CPU], "recognition": [CPU]}).cuda


def test_missing_pack_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "models" / "empty_pack").mkdir(parents=True)
    with pytest.raises(EngineError, match="MODEL_ROOT and MODEL_PACK"):
        InsightFaceEngine(model_root=tmp_path, model_pack="empty_pack", provider_preference="cpu")


def test_default_settings_keep_insightface_download_behaviour(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MODEL_ROOT", "MODEL_PACK"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.model_pack == "buffalo_l"
    assert str(settings.model_root_path).endswith(".insightface")
    assert settings.effective_match_threshold == 0.5
    assert Settings(model_pack="offline_sc").effective_match_threshold == 0.6


def test_batching_engine_shares_recognition_batches_across_callers(
    engine: InsightFaceEngine, t1: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from gpu_app.engine.microbatch import MicroBatchingEngine

    expected = engine.analyze([t1])[0]
    calls: list[int] = []
    original = engine._recognizer.get_feat
    monkeypatch.setattr(engine._recognizer, "get_feat", counting(calls, original))
    batching = MicroBatchingEngine(engine)
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(lambda _: batching.analyze([t1]), range(8)))
    finally:
        batching.close()
    for result in results:  # every caller gets its own image's faces, identical to a direct call
        assert len(result) == 1 and len(result[0]) == 6
        for got, want in zip(result[0], expected, strict=True):
            np.testing.assert_allclose(got.embedding, want.embedding, atol=1e-5)
    assert batching.rounds == len(calls) < 8  # callers waiting together shared a model call
    assert sum(calls) == 48


def test_batching_engine_passes_an_image_error_to_its_caller(engine: InsightFaceEngine) -> None:
    from gpu_app.engine.base import ImageRejectedError
    from gpu_app.engine.microbatch import MicroBatchingEngine

    batching = MicroBatchingEngine(engine)
    try:
        with pytest.raises(ImageRejectedError, match="empty"):
            batching.analyze([np.zeros((0, 0, 3), dtype=np.uint8)])
        assert len(batching.analyze([np.full((64, 64, 3), 127, np.uint8)])[0]) == 0  # still serving
    finally:
        batching.close()


@pytest.mark.parametrize(
    "shape",
    ["as is", "enlarged", "reduced", "portrait", "wide strip", "no face"],
)
def test_letterbox_detection_is_insightface_detection(
    engine: InsightFaceEngine, t1: np.ndarray, shape: str
) -> None:
    """The engine's own letterbox and decoding give insightface's boxes, scores and landmarks exactly,
    whichever side of the det_size square the image fills."""
    image = {
        "as is": t1,
        "enlarged": cv2.resize(t1, None, fx=1.5, fy=1.5),
        "reduced": cv2.resize(t1, None, fx=0.4, fy=0.4),
        "portrait": np.ascontiguousarray(t1.transpose(1, 0, 2)),
        "wide strip": np.hstack([t1] * 3),
        "no face": np.full((300, 900, 3), 90, np.uint8),
    }[shape]
    want_boxes, want_points = engine._detector.detect(image)
    for _ in range(2):  # the reused blob keeps nothing of the previous image
        boxes, points = engine.detect(image)
        np.testing.assert_array_equal(boxes, want_boxes)
        np.testing.assert_array_equal(points, want_points)
        engine.detect(np.ascontiguousarray(t1[:200]))


def test_detection_does_not_build_its_blob_with_blob_from_image(
    engine: InsightFaceEngine, t1: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cv2.dnn.blobFromImage over a padded det_size copy took 7-8 ms of a ~16 ms detection on two
    cores (issue 18): the engine writes the letterbox into its blob itself."""

    def refused(*args: object, **kwargs: object) -> np.ndarray:
        raise AssertionError("blobFromImage called")

    monkeypatch.setattr(cv2.dnn, "blobFromImage", refused)
    boxes, _ = engine.detect(t1)
    assert len(boxes) == 6


def test_engine_runs_both_models_once_before_it_is_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    """Warm-up at load (issue 18 goal 3): a detection at det_size and a recognition batch of the
    largest size, so onnxruntime's arena belongs to the ready process, not to the first request."""
    import onnxruntime

    shapes: list[tuple[int, ...]] = []
    run = onnxruntime.InferenceSession.run

    def recorded(session: onnxruntime.InferenceSession, outputs: object, feed: dict, *rest: object) -> object:
        shapes.append(tuple(next(iter(feed.values())).shape))
        return run(session, outputs, feed, *rest)

    monkeypatch.setattr(onnxruntime.InferenceSession, "run", recorded)
    InsightFaceEngine(model_root=MODEL_ROOT, model_pack=MODEL_PACK, det_size=320, rec_batch_size=8)
    assert (1, 3, 320, 320) in shapes
    assert (8, 3, 112, 112) in shapes


def test_alignment_matches_insightface_norm_crop(engine: InsightFaceEngine, t1: np.ndarray) -> None:
    """Umeyama's estimate without scikit-image's SimilarityTransform around it: insightface's
    transform bit for bit, so the same crops, at less than half the cost per face."""
    import warnings

    from insightface.utils import face_align

    from gpu_app.engine.alignment import norm_crops, similarity_matrices, template_for

    _, landmarks = engine.detect(t1)
    for size in (112, 128, 224):
        for points in [*landmarks, landmarks[0][::-1].copy()]:  # the last in reverse order: a reflection
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                want = face_align.estimate_norm(points, size)
                want_crop = face_align.norm_crop(t1, points, size)
            np.testing.assert_array_equal(similarity_matrices(points[None], template_for(size))[0], want)
            np.testing.assert_array_equal(norm_crops(t1, points[None], size)[0], want_crop)


def test_alignment_does_without_scikit_image(
    engine: InsightFaceEngine, t1: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SimilarityTransform's machinery cost more than its arithmetic, per face (issue 18)."""
    from skimage import transform

    def refused(*args: object, **kwargs: object) -> None:
        raise AssertionError("SimilarityTransform used")

    monkeypatch.setattr(transform, "SimilarityTransform", refused)
    faces = engine.analyze([t1])[0]
    assert len(faces) == 6


def test_stacked_alignment_is_scikit_images_estimate_face_by_face() -> None:
    """All of an image's faces in one stacked estimate (issue 18 goal 1): each matrix is still
    scikit-image's Umeyama estimate (what insightface uses) bit for bit, degenerate faces included."""
    from skimage.transform._geometric import _umeyama

    from gpu_app.engine.alignment import similarity_matrices, template_for

    rng = np.random.default_rng(21)
    faces = (rng.uniform(50, 900, size=(400, 1, 2)) + rng.normal(0, 20, size=(400, 5, 2))).astype(np.float32)
    faces[::7] = faces[::7, ::-1]  # mirrored point order: a reflection
    faces[3] = np.linspace([10, 10], [50, 90], 5, dtype=np.float32)  # collinear: rank 1
    faces[5] = np.float32(42.0)  # one point five times: rank 0
    for size in (112, 128):
        template = template_for(size)
        got = similarity_matrices(faces, template)
        for face, matrix in zip(faces, got, strict=True):
            np.testing.assert_array_equal(matrix, _umeyama(face, template, True)[:2])
