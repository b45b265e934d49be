"""The VectorIndex contract: every backend passes the same suite.

Backends: `embedded` and `elasticsearch-fake` (the Elasticsearch implementation against the HTTP
fake in tests/support) always; `elasticsearch-live` only when ES_URL names a cluster (credentials
from ES_USERNAME/ES_PASSWORD or ES_API_KEY, CA bundle from ES_CA_CERTS; see gpu_app/index/README.md).
Each live test works in its own index, deleted afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gpu_app.index.base import (
    FaceRecord,
    IndexMismatchError,
    SearchFilters,
    VectorIndex,
)

PACK = "buffalo_l"
OTHER_PACK = "antelopev2"


@dataclass
class Backend:
    """Makes index instances over one shared store (so a second instance sees the first one's data)."""

    name: str
    make: Callable[[], VectorIndex]
    # Tolerance on similarities: quantised HNSW graphs (int8/int4/bbq) score approximately.
    similarity_tolerance: float = 1e-5
    opened: list[VectorIndex] = field(default_factory=list)

    def new(self) -> VectorIndex:
        index = self.make()
        self.opened.append(index)
        return index

    def open(self, dim: int, pack: str = PACK) -> VectorIndex:
        index = self.new()
        index.open(dim, pack)
        return index


def _embedded(tmp_path: Path) -> Iterator[Backend]:
    try:
        from gpu_app.index.embedded import EmbeddedIndex
    except ImportError as exc:  # pragma: no cover - only while the backend is being written
        pytest.skip(f"gpu_app.index.embedded is not importable: {exc}")
    yield Backend("embedded", lambda: EmbeddedIndex(tmp_path / "index"))


def _elasticsearch_live() -> Iterator[Backend]:
    url = os.environ.get("ES_URL")
    if not url:
        pytest.skip("live Elasticsearch contract tests need ES_URL (e.g. ES_URL=https://localhost:9200)")
    from gpu_app.index.elasticsearch import ElasticsearchIndex, ElasticsearchSettings, build_client

    name = f"test-faces-{uuid.uuid4().hex[:12]}"
    settings = ElasticsearchSettings(es_hosts=url, index_name=name, es_refresh="wait_for")
    backend = Backend(
        "elasticsearch-live",
        lambda: ElasticsearchIndex(settings),
        similarity_tolerance={"hnsw": 1e-5, "int8_hnsw": 0.02, "int4_hnsw": 0.05, "bbq_hnsw": 0.05}[
            settings.es_index_options_type
        ],
    )
    yield backend
    client = build_client(settings)
    try:
        client.options(ignore_status=404).indices.delete(index=name)
    finally:
        client.close()


def _elasticsearch_fake() -> Iterator[Backend]:
    """The Elasticsearch implementation against the HTTP fake (exact brute-force knn), always run."""
    from gpu_app.index.elasticsearch import ElasticsearchIndex, ElasticsearchSettings
    from tests.support.fake_elasticsearch import FakeElasticsearch

    with FakeElasticsearch() as server:
        settings = ElasticsearchSettings(es_hosts=server.url, es_refresh="wait_for", es_max_retries=0)
        yield Backend("elasticsearch-fake", lambda: ElasticsearchIndex(settings))
    assert server.problems == []


@pytest.fixture(
    params=[
        "embedded",
        "elasticsearch-fake",
        pytest.param("elasticsearch-live", marks=pytest.mark.elasticsearch),
    ]
)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    factory = {
        "embedded": lambda: _embedded(tmp_path),
        "elasticsearch-fake": _elasticsearch_fake,
        "elasticsearch-live": _elasticsearch_live,
    }[request.param]()
    made = next(factory)
    try:
        yield made
    finally:
        for index in made.opened:
            index.close()
        next(factory, None)  # the factory's cleanup


# --- data -------------------------------------------------------------------------------------------
def unit(rng: np.random.Generator, dim: int) -> np.ndarray:
    vector = rng.standard_normal(dim)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def at_cosine(query: np.ndarray, cosine: float, rng: np.random.Generator) -> np.ndarray:
    """A unit vector whose cosine with the unit `query` is `cosine`."""
    q = query.astype(np.float64)
    other = rng.standard_normal(q.shape)
    other -= (other @ q) * q
    other /= np.linalg.norm(other)
    vector = cosine * q + np.sqrt(1 - cosine**2) * other
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def face(face_id: str, embedding: np.ndarray, **overrides: Any) -> FaceRecord:
    values: dict[str, Any] = {
        "face_id": face_id,
        "image_id": f"img-{face_id}",
        "storage_key": f"images/{face_id}.jpg",
        "model_pack": PACK,
        "det_score": 0.875,
        "bbox": (10.0, 20.5, 110.0, 140.25),
        "embedding": embedding,
    }
    return FaceRecord(**(values | overrides))


def population(dim: int, seed: int = 7) -> tuple[np.ndarray, list[FaceRecord], dict[str, float]]:
    """A query, faces planted at known cosines (well separated) and random background faces."""
    rng = np.random.default_rng(seed)
    query = unit(rng, dim)
    planted = {"p95": 0.95, "p88": 0.88, "p81": 0.81, "p74": 0.74, "p67": 0.67}
    records = [
        face(
            fid, at_cosine(query, c, rng), image_id=f"img-{i % 2}", collection="team" if i < 3 else "default"
        )
        for i, (fid, c) in enumerate(planted.items())
    ]
    # Random unit vectors in 256+ dimensions sit near cosine 0 (std ~ 1/sqrt(dim)), far below 0.67.
    records += [face(f"bg{i:03d}", unit(rng, dim), image_id=f"bg-img-{i % 10}") for i in range(60)]
    cosines = {r.face_id: float(r.embedding.astype(np.float64) @ query) for r in records}
    return query, records, cosines


DIMS = [256, 512]


# --- lifecycle ---------------------------------------------------------------------------------------
def test_open_creates_then_reopens(backend: Backend) -> None:
    first = backend.open(256)
    assert first.count() == 0
    first.add(population(256)[1][:3])
    first.close()

    again = backend.open(256)

    assert again.count() == 3
    assert again.health().ok


def test_open_with_another_dimension_is_a_mismatch(backend: Backend) -> None:
    backend.open(256).close()
    with pytest.raises(IndexMismatchError):
        backend.new().open(512, PACK)


def test_open_with_another_model_pack_is_a_mismatch(backend: Backend) -> None:
    backend.open(256).close()
    with pytest.raises(IndexMismatchError):
        backend.new().open(256, OTHER_PACK)


def test_add_refuses_vectors_of_another_model(backend: Backend) -> None:
    index = backend.open(256)
    rng = np.random.default_rng(3)
    with pytest.raises(IndexMismatchError):
        index.add([face("a", unit(rng, 256), model_pack=OTHER_PACK)])
    with pytest.raises(IndexMismatchError):
        index.add([face("b", unit(rng, 512))])
    assert index.count() == 0


# --- writes and reads --------------------------------------------------------------------------------
@pytest.mark.parametrize("dim", DIMS)
def test_add_then_get_round_trips(backend: Backend, dim: int) -> None:
    index = backend.open(dim)
    rng = np.random.default_rng(11)
    original = face("f-1", unit(rng, dim), collection="team", created_at="2024-05-01T12:00:00Z")
    index.add([original, face("f-2", unit(rng, dim))])

    fetched = index.get("f-1")

    assert fetched is not None
    # The stored float32 vector comes back exactly: quantisation only touches the HNSW graph.
    np.testing.assert_allclose(fetched.embedding, original.embedding, rtol=0, atol=1e-7)
    assert fetched.embedding.shape == (dim,)
    assert replace(fetched, embedding=original.embedding, det_score=original.det_score) == original
    assert fetched.det_score == pytest.approx(original.det_score)
    assert index.get("missing") is None


def test_upsert_by_face_id_never_duplicates(backend: Backend) -> None:
    index = backend.open(256)
    rng = np.random.default_rng(12)
    index.add([face("f-1", unit(rng, 256)), face("f-2", unit(rng, 256))])
    replacement = face("f-1", unit(rng, 256), storage_key="images/moved.jpg", det_score=0.5)

    index.add([replacement])

    assert index.count() == 2
    fetched = index.get("f-1")
    assert fetched is not None
    assert fetched.storage_key == "images/moved.jpg"
    np.testing.assert_allclose(fetched.embedding, replacement.embedding, atol=1e-7)
    hits = index.search(replacement.embedding, k=5, threshold=0.99)
    assert [h.face_id for h in hits] == ["f-1"]


# --- search ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dim", DIMS)
def test_search_returns_the_best_first_with_numpy_cosines(backend: Backend, dim: int) -> None:
    index = backend.open(dim)
    query, records, cosines = population(dim)
    index.add(records)

    hits = index.search(query, k=5, threshold=-1.0)

    expected = sorted(cosines, key=lambda f: -cosines[f])[:5]
    assert [h.face_id for h in hits] == expected == ["p95", "p88", "p81", "p74", "p67"]
    for hit in hits:
        assert hit.similarity == pytest.approx(cosines[hit.face_id], abs=backend.similarity_tolerance)
        source = next(r for r in records if r.face_id == hit.face_id)
        assert (hit.image_id, hit.storage_key, hit.collection) == (
            source.image_id,
            source.storage_key,
            source.collection,
        )
        assert hit.bbox == source.bbox
        assert hit.det_score == pytest.approx(source.det_score)


def test_search_honours_k(backend: Backend) -> None:
    index = backend.open(256)
    query, records, _ = population(256)
    index.add(records)

    assert [h.face_id for h in index.search(query, k=2, threshold=-1.0)] == ["p95", "p88"]
    assert len(index.search(query, k=20, threshold=-1.0)) == 20


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [(0.845, ["p95", "p88"]), (0.705, ["p95", "p88", "p81", "p74"]), (0.985, [])],
)
def test_search_honours_the_cosine_threshold(backend: Backend, threshold: float, expected: list[str]) -> None:
    index = backend.open(256)
    query, records, _ = population(256)
    index.add(records)

    hits = index.search(query, k=10, threshold=threshold)

    assert [h.face_id for h in hits] == expected
    assert all(h.similarity >= threshold - backend.similarity_tolerance for h in hits)


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (SearchFilters(collection="team"), ["p95", "p88", "p81"]),
        (SearchFilters(image_id="img-1"), ["p88", "p74"]),
        (SearchFilters(collection="team", image_id="img-0"), ["p95", "p81"]),
        (SearchFilters(model_pack=PACK), ["p95", "p88", "p81", "p74", "p67"]),
        (SearchFilters(model_pack=OTHER_PACK), []),
        (SearchFilters(collection="nobody"), []),
    ],
)
def test_search_honours_each_filter(backend: Backend, filters: SearchFilters, expected: list[str]) -> None:
    index = backend.open(256)
    query, records, _ = population(256)
    index.add(records)

    hits = index.search(query, k=5, threshold=0.5, filters=filters)

    assert [h.face_id for h in hits] == expected


# --- deletes and counts ---------------------------------------------------------------------------------
def test_delete_image_removes_exactly_that_images_faces(backend: Backend) -> None:
    index = backend.open(256)
    query, records, _ = population(256)
    index.add(records)
    doomed = {r.face_id for r in records if r.image_id == "img-0"}

    assert index.delete_image("img-0") == len(doomed) == 3

    assert index.count() == len(records) - 3
    assert all(index.get(face_id) is None for face_id in doomed)
    assert index.get("p88") is not None
    assert [h.face_id for h in index.search(query, k=3, threshold=0.5)] == ["p88", "p74"]
    assert index.delete_image("img-0") == 0


def test_count_with_and_without_filters(backend: Backend) -> None:
    index = backend.open(256)
    _, records, _ = population(256)
    index.add(records)

    assert index.count() == 65
    assert index.count(SearchFilters(collection="team")) == 3
    assert index.count(SearchFilters(collection="default")) == 62
    assert index.count(SearchFilters(image_id="bg-img-3")) == 6
    assert index.count(SearchFilters(model_pack=PACK)) == 65
    assert index.count(SearchFilters(model_pack=OTHER_PACK)) == 0


def test_health_is_ok(backend: Backend) -> None:
    index = backend.open(256)
    index.add(population(256)[1][:4])

    health = index.health()

    assert health.ok
    assert health.backend == backend.name.split("-")[0]
    assert health.count == 4


def test_the_same_face_in_two_collections_is_two_records(backend: Backend) -> None:
    """The service gives the same bytes in another collection another image id (and face ids), so
    a backend must keep both, find each in its own collection, and delete one without the other."""
    index = backend.open(256)
    rng = np.random.default_rng(11)
    vector = unit(rng, 256)
    index.add([face("alpha-000", vector, image_id="img-alpha", collection="alpha")])
    index.add([face("beta-000", vector, image_id="img-beta", collection="beta")])
    for collection in ("alpha", "beta"):
        [hit] = index.search(vector, 5, 0.5, SearchFilters(collection=collection))
        assert (hit.face_id, hit.image_id, hit.collection) == (
            f"{collection}-000",
            f"img-{collection}",
            collection,
        )
    assert {h.collection for h in index.search(vector, 5, 0.5)} == {"alpha", "beta"}
    assert index.delete_image("img-alpha") == 1
    assert index.search(vector, 5, 0.5, SearchFilters(collection="alpha")) == []
    assert [h.face_id for h in index.search(vector, 5, 0.5, SearchFilters(collection="beta"))] == ["beta-000"]


def test_a_collection_filter_finds_faces_added_after_earlier_filtered_searches(backend: Backend) -> None:
    """Regression: the embedded index's cached collection bitmap lost faces whose row id grew it
    (the grown array was dropped), so a filtered search missed a face just added (issue 16)."""
    index = backend.open(32)
    rng = np.random.default_rng(16)
    for i in range(40):
        vector = unit(rng, 32)
        index.add([face(f"f{i}", vector, image_id=f"img-{i}", collection="team")])
        hits = index.search(vector, k=1, threshold=0.99, filters=SearchFilters(collection="team"))
        assert [h.face_id for h in hits] == [f"f{i}"]
