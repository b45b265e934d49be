"""ElasticsearchIndex at the HTTP boundary: the real `elasticsearch` client against a fake server.

Every test checks what the client actually sent (method, path, compatibility headers, bodies) and
how the index reacts to answers in the documented REST formats, including failures.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import boto3
import numpy as np
import pytest
from pydantic import ValidationError

from gpu_app.config import Settings
from gpu_app.index import build_index
from gpu_app.index.base import (
    FaceRecord,
    IndexMismatchError,
    IndexUnavailableError,
    IndexWriteError,
    SearchFilters,
)
from gpu_app.index.elasticsearch import ElasticsearchIndex, ElasticsearchSettings, build_client
from tests.support.fake_elasticsearch import (
    COMPAT_JSON,
    COMPAT_NDJSON,
    FakeElasticsearch,
    Scripted,
    error_body,
)
from tests.support.moto_server import free_port

pytestmark = pytest.mark.timeout(60)

INDEX = "face_embeddings"
PACK = "buffalo_l"
DIM = 16
RETRIES = 2  # ES_MAX_RETRIES in these tests: every failing operation makes exactly 3 attempts


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's ES_* variables (e.g. for the live suite) must not leak into these tests."""
    for name in list(os.environ):
        if name.startswith("ES_") or name == "INDEX_NAME":
            monkeypatch.delenv(name)


@pytest.fixture
def fake() -> Iterator[FakeElasticsearch]:
    with FakeElasticsearch() as server:
        yield server
    assert server.problems == [], "the client sent requests without the 8.x compatibility media types"


def settings(server: FakeElasticsearch | str, **overrides: Any) -> ElasticsearchSettings:
    values: dict[str, Any] = {
        "es_hosts": server if isinstance(server, str) else server.url,
        "es_refresh": "wait_for",
        "es_max_retries": RETRIES,
        "es_retry_backoff": 0.01,
        "es_retry_max_backoff": 0.05,
        "es_request_timeout": 5,
    }
    return ElasticsearchSettings(**(values | overrides))


def opened(server: FakeElasticsearch, dim: int = DIM, **overrides: Any) -> ElasticsearchIndex:
    index = ElasticsearchIndex(settings(server, **overrides))
    index.open(dim, PACK)
    return index


def unit(rng: np.random.Generator, dim: int = DIM) -> np.ndarray:
    vector = rng.standard_normal(dim).astype(np.float32)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def record(i: int, rng: np.random.Generator, **overrides: Any) -> FaceRecord:
    values: dict[str, Any] = {
        "face_id": f"face-{i}",
        "image_id": f"img-{i // 2}",
        "storage_key": f"images/{i // 2}.jpg",
        "model_pack": PACK,
        "det_score": 0.5 + i / 100,
        "bbox": (float(i), 2.0, 30.5, 40.25),
        "embedding": unit(rng, overrides.pop("dim", DIM)),
    }
    return FaceRecord(**(values | overrides))


def bulk_calls(server: FakeElasticsearch) -> list[Any]:
    return server.calls("PUT", f"/{INDEX}/_bulk")


def bulk_ids(call: Any) -> list[str]:
    return [line["index"]["_id"] for line in call.ndjson()[::2]]


def expected_mapping(dim: int, options: dict[str, Any], similarity: str = "dot_product") -> dict[str, Any]:
    return {
        "dynamic": "strict",
        "_meta": {"model_pack": PACK, "embedding_dim": dim, "schema_version": 1},
        "properties": {
            "face_id": {"type": "keyword"},
            "image_id": {"type": "keyword"},
            "storage_key": {"type": "keyword"},
            "model_pack": {"type": "keyword"},
            "collection": {"type": "keyword"},
            "det_score": {"type": "float"},
            "bbox": {"type": "float", "index": False},
            "created_at": {"type": "date"},
            "embedding": {
                "type": "dense_vector",
                "element_type": "float",
                "dims": dim,
                "index": True,
                "similarity": similarity,
                "index_options": options,
            },
        },
    }


# --- index management ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("options_type", "m", "ef"),
    [("int8_hnsw", 16, 100), ("hnsw", 32, 200), ("int4_hnsw", 16, 100), ("bbq_hnsw", 24, 150)],
)
def test_open_creates_the_index_with_an_explicit_mapping(
    fake: FakeElasticsearch, options_type: str, m: int, ef: int
) -> None:
    opened(fake, dim=512, es_index_options_type=options_type, es_hnsw_m=m, es_hnsw_ef_construction=ef)

    assert [(r.method, r.path) for r in fake.requests] == [
        ("HEAD", f"/{INDEX}"),
        ("PUT", f"/{INDEX}"),
        ("GET", f"/{INDEX}/_mapping"),
    ]
    (create,) = fake.calls("PUT", f"/{INDEX}")
    assert create.headers["content-type"] == COMPAT_JSON
    assert create.headers["accept"] == COMPAT_JSON
    assert create.json() == {
        "mappings": expected_mapping(512, {"type": options_type, "m": m, "ef_construction": ef})
    }


def test_shards_replicas_and_cosine_are_passed_through(fake: FakeElasticsearch) -> None:
    opened(fake, es_shards=3, es_replicas=0, es_similarity="cosine")

    (create,) = fake.calls("PUT", f"/{INDEX}")
    assert create.json() == {
        "settings": {"index": {"number_of_shards": 3, "number_of_replicas": 0}},
        "mappings": expected_mapping(
            DIM, {"type": "int8_hnsw", "m": 16, "ef_construction": 100}, similarity="cosine"
        ),
    }


def test_reopening_verifies_and_never_recreates(fake: FakeElasticsearch) -> None:
    opened(fake)
    opened(fake)

    assert len(fake.calls("PUT", f"/{INDEX}")) == 1
    assert len(fake.calls("GET", f"/{INDEX}/_mapping")) == 2


@pytest.mark.parametrize(
    ("dim", "pack", "mutate", "message"),
    [
        (512, PACK, None, "_meta says 16-d"),
        (DIM, "antelopev2", None, "built for model pack 'buffalo_l'"),
        (DIM, PACK, lambda m: m["properties"]["embedding"].update(similarity="l2_norm"), "l2_norm"),
        (DIM, PACK, lambda m: m.pop("_meta"), "no model pack in the mapping _meta"),
    ],
    ids=["other-dims", "other-pack", "other-similarity", "foreign-index"],
)
def test_an_existing_index_for_other_vectors_is_a_startup_error(
    fake: FakeElasticsearch, dim: int, pack: str, mutate: Any, message: str
) -> None:
    mapping = expected_mapping(DIM, {"type": "int8_hnsw"})
    if mutate is not None:
        mutate(mapping)
    fake.put_index(INDEX, mapping)

    index = ElasticsearchIndex(settings(fake))
    with pytest.raises(IndexMismatchError, match=message):
        index.open(dim, pack)
    assert fake.calls("PUT", f"/{INDEX}") == []
    with pytest.raises(IndexUnavailableError, match="not open"):
        index.count()


@pytest.mark.parametrize(
    ("options_type", "dim", "message"),
    [("int4_hnsw", 15, "even number"), ("bbq_hnsw", 64, "more than 64")],
)
def test_quantisation_limits_are_checked_before_any_request(
    fake: FakeElasticsearch, options_type: str, dim: int, message: str
) -> None:
    index = ElasticsearchIndex(settings(fake, es_index_options_type=options_type))
    with pytest.raises(ValueError, match=message):
        index.open(dim, PACK)
    assert fake.requests == []


def test_losing_the_creation_race_is_success(fake: FakeElasticsearch) -> None:
    # Another instance created the index between our existence check and our create.
    fake.put_index(INDEX, expected_mapping(DIM, {"type": "int8_hnsw", "m": 16, "ef_construction": 100}))
    fake.script("HEAD", f"/{INDEX}", Scripted(404))

    index = opened(fake)

    (create,) = fake.calls("PUT", f"/{INDEX}")
    assert create.json()["mappings"]["_meta"]["model_pack"] == PACK
    assert len(fake.calls("GET", f"/{INDEX}/_mapping")) == 1
    assert index.health().ok


def test_losing_the_creation_race_to_another_model_pack_is_a_mismatch(fake: FakeElasticsearch) -> None:
    other = expected_mapping(DIM, {"type": "int8_hnsw"})
    other["_meta"]["model_pack"] = "antelopev2"
    fake.put_index(INDEX, other)
    fake.script("HEAD", f"/{INDEX}", Scripted(404))

    with pytest.raises(IndexMismatchError, match="antelopev2"):
        opened(fake)


def test_other_index_options_warn_and_make_health_not_ok(
    fake: FakeElasticsearch, caplog: pytest.LogCaptureFixture
) -> None:
    fake.put_index(INDEX, expected_mapping(DIM, {"type": "hnsw", "m": 16, "ef_construction": 100}))

    with caplog.at_level(logging.WARNING, logger="gpu_app.index.elasticsearch"):
        index = opened(fake)  # usable: the vectors fit, only the graph differs from the settings
    health = index.health()

    assert "index_options type is hnsw" in caplog.text
    assert not health.ok
    assert health.detail["mapping_ok"] is False
    assert any("int8_hnsw" in p for p in health.detail["mapping_problems"])


# --- writes ---------------------------------------------------------------------------------------
def test_bulk_body_is_ndjson_with_face_ids_as_document_ids(fake: FakeElasticsearch) -> None:
    rng = np.random.default_rng(1)
    records = [record(0, rng, created_at="2024-05-01T12:00:00Z", collection="team"), record(1, rng)]
    index = opened(fake)

    index.add(records)

    (call,) = bulk_calls(fake)
    assert call.headers["content-type"] == COMPAT_NDJSON
    assert call.headers["accept"] == COMPAT_JSON
    assert call.query == {"refresh": "wait_for"}
    assert call.body.endswith(b"\n")
    assert call.ndjson() == [
        {"index": {"_id": "face-0"}},
        {
            "face_id": "face-0",
            "image_id": "img-0",
            "storage_key": "images/0.jpg",
            "model_pack": PACK,
            "collection": "team",
            "det_score": 0.5,
            "bbox": [0.0, 2.0, 30.5, 40.25],
            "embedding": records[0].embedding.tolist(),
            "created_at": "2024-05-01T12:00:00Z",
        },
        {"index": {"_id": "face-1"}},
        {
            "face_id": "face-1",
            "image_id": "img-0",
            "storage_key": "images/0.jpg",
            "model_pack": PACK,
            "collection": "default",
            "det_score": 0.51,
            "bbox": [1.0, 2.0, 30.5, 40.25],
            "embedding": records[1].embedding.tolist(),
        },
    ]
    sent = np.asarray(call.ndjson()[1]["embedding"], dtype=np.float32)
    assert np.array_equal(sent, records[0].embedding)  # float32 survives JSON exactly


def test_large_batches_are_chunked(fake: FakeElasticsearch) -> None:
    rng = np.random.default_rng(2)
    records = tuple(record(i, rng) for i in range(10))  # any Sequence
    index = opened(fake, es_chunk_size=4)

    index.add(records)

    assert [len(bulk_ids(c)) for c in bulk_calls(fake)] == [4, 4, 2]
    assert sorted(fake.indices[INDEX].docs) == sorted(r.face_id for r in records)


@pytest.mark.parametrize(
    ("refresh", "sent"), [("false", "false"), ("true", "true"), ("wait_for", "wait_for")]
)
def test_refresh_policy_is_sent_with_bulk(fake: FakeElasticsearch, refresh: str, sent: str) -> None:
    index = opened(fake, es_refresh=refresh)
    index.add([record(0, np.random.default_rng(3))])

    (call,) = bulk_calls(fake)
    assert call.query == {"refresh": sent}


def test_partial_bulk_failure_names_exactly_the_failed_faces(fake: FakeElasticsearch) -> None:
    rng = np.random.default_rng(4)
    records = [record(i, rng) for i in range(5)]
    fake.fail_items["face-1"] = [(400, "document_parsing_exception", "[1:2] failed to parse")]
    # Rejected on every attempt: still failing when the retries are spent.
    fake.fail_items["face-3"] = [(429, "es_rejected_execution_exception", "queue full")] * (RETRIES + 1)
    index = opened(fake)

    with pytest.raises(IndexWriteError) as raised:
        index.add(records)

    assert set(raised.value.failures) == {"face-1", "face-3"}
    assert "document_parsing_exception" in raised.value.failures["face-1"]
    assert raised.value.failures["face-3"].startswith("HTTP 429 es_rejected_execution_exception")
    assert sorted(fake.indices[INDEX].docs) == ["face-0", "face-2", "face-4"]
    # Only the rejected document is retried; the 400 is final at once.
    assert [bulk_ids(c) for c in bulk_calls(fake)] == [[r.face_id for r in records], ["face-3"], ["face-3"]]


def test_a_rejected_item_is_retried_and_succeeds(fake: FakeElasticsearch) -> None:
    rng = np.random.default_rng(5)
    records = [record(i, rng) for i in range(3)]
    fake.fail_items["face-2"] = [(429, "es_rejected_execution_exception", "queue full")]
    index = opened(fake)

    index.add(records)

    assert [bulk_ids(c) for c in bulk_calls(fake)] == [["face-0", "face-1", "face-2"], ["face-2"]]
    assert sorted(fake.indices[INDEX].docs) == ["face-0", "face-1", "face-2"]


def test_a_429_on_the_whole_request_is_retried_and_succeeds(fake: FakeElasticsearch) -> None:
    rng = np.random.default_rng(6)
    records = [record(i, rng) for i in range(3)]
    index = opened(fake)
    fake.script(
        "PUT",
        f"/{INDEX}/_bulk",
        Scripted(429, error_body(429, "es_rejected_execution_exception", "rejected execution")),
    )

    index.add(records)

    assert len(bulk_calls(fake)) == 2
    assert sorted(fake.indices[INDEX].docs) == ["face-0", "face-1", "face-2"]


def test_persistent_503_on_bulk_is_unavailable_within_bounded_time(fake: FakeElasticsearch) -> None:
    index = opened(fake)
    outage = Scripted(503, error_body(503, "cluster_block_exception", "blocked by: [SERVICE_UNAVAILABLE]"))
    fake.script("PUT", f"/{INDEX}/_bulk", *[outage] * 10)

    started = time.monotonic()
    with pytest.raises(IndexUnavailableError, match="503") as raised:
        index.add([record(i, np.random.default_rng(7)) for i in range(3)])

    assert time.monotonic() - started < 5
    assert len(bulk_calls(fake)) == RETRIES + 1
    assert "3 of 3 face vector(s) not confirmed written" in str(raised.value)
    assert fake.indices[INDEX].docs == {}


def test_a_bulk_timeout_is_retried_for_the_unanswered_documents(fake: FakeElasticsearch) -> None:
    rng = np.random.default_rng(8)
    records = [record(i, rng) for i in range(4)]
    index = opened(fake, es_request_timeout=0.3, es_chunk_size=2)
    fake.script("PUT", f"/{INDEX}/_bulk", Scripted(0), Scripted(0, delay=5))

    index.add(records)

    # Chunk 2 was applied but answered too late: only its documents are sent again.
    assert [bulk_ids(c) for c in bulk_calls(fake)] == [
        ["face-0", "face-1"],
        ["face-2", "face-3"],
        ["face-2", "face-3"],
    ]


def test_a_bulk_request_refused_as_a_whole_fails_every_document_in_it(fake: FakeElasticsearch) -> None:
    rng = np.random.default_rng(22)
    index = opened(fake, es_chunk_size=2)
    fake.script("PUT", f"/{INDEX}/_bulk", Scripted(0), Scripted(413, error_body(413, "content_too_long", "")))

    with pytest.raises(IndexWriteError) as raised:
        index.add([record(i, rng) for i in range(4)])

    assert set(raised.value.failures) == {"face-2", "face-3"}  # not retried: 413 is not transient
    assert all(reason.startswith("HTTP 413") for reason in raised.value.failures.values())
    assert sorted(fake.indices[INDEX].docs) == ["face-0", "face-1"]
    assert len(bulk_calls(fake)) == 2


def test_add_refuses_vectors_of_another_model_without_writing(fake: FakeElasticsearch) -> None:
    rng = np.random.default_rng(9)
    index = opened(fake)

    with pytest.raises(IndexMismatchError, match="antelopev2"):
        index.add([record(0, rng), record(1, rng, model_pack="antelopev2")])
    with pytest.raises(IndexMismatchError, match=r"\(512,\)"):
        index.add([record(2, rng, dim=512)])
    assert bulk_calls(fake) == []


# --- search ---------------------------------------------------------------------------------------
def test_knn_query_json(fake: FakeElasticsearch) -> None:
    rng = np.random.default_rng(10)
    index = opened(fake)
    query = unit(rng) * 3  # not unit length: the index normalises before sending

    index.search(query, k=5, threshold=0.6, filters=SearchFilters("team", "img-1", PACK))

    (call,) = fake.calls("POST", f"/{INDEX}/_search")
    assert call.query == {"allow_partial_search_results": "false"}
    body = call.json()
    assert np.allclose(body["knn"].pop("query_vector"), query / 3, atol=1e-6)
    assert body == {
        "knn": {
            "field": "embedding",
            "k": 5,
            "num_candidates": 50,
            "similarity": 0.6,  # the cosine itself: knn similarity is not in score space
            "filter": [
                {"term": {"collection": "team"}},
                {"term": {"image_id": "img-1"}},
                {"term": {"model_pack": PACK}},
            ],
        },
        "size": 5,
        "_source": [
            "face_id",
            "image_id",
            "storage_key",
            "model_pack",
            "collection",
            "det_score",
            "bbox",
            "created_at",
        ],
    }


@pytest.mark.parametrize(
    ("k", "factor", "expected"), [(5, 10, 50), (3, 1, 3), (7, 1.5, 11), (2000, 10, 10_000)]
)
def test_num_candidates(fake: FakeElasticsearch, k: int, factor: float, expected: int) -> None:
    index = opened(fake, es_num_candidates_factor=factor)
    index.search(unit(np.random.default_rng(11)), k=k, threshold=0.0)

    (call,) = fake.calls("POST", f"/{INDEX}/_search")
    assert call.json()["knn"]["num_candidates"] == expected


def test_scores_are_mapped_back_to_cosine(fake: FakeElasticsearch) -> None:
    index = opened(fake)
    hits = [
        {"_index": INDEX, "_id": f"f{i}", "_score": score, "_source": {"face_id": f"f{i}", "image_id": "i"}}
        for i, score in enumerate([0.9, 0.55, 0.25])
    ]
    fake.script(
        "POST",
        f"/{INDEX}/_search",
        Scripted(200, {"took": 1, "timed_out": False, "hits": {"total": {"value": 3}, "hits": hits}}),
    )

    result = index.search(unit(np.random.default_rng(12)), k=3, threshold=-1.0)

    assert [h.face_id for h in result] == ["f0", "f1", "f2"]
    assert [h.similarity for h in result] == pytest.approx([0.8, 0.1, -0.5], abs=1e-12)


def test_search_results_match_numpy_and_honour_the_threshold(fake: FakeElasticsearch) -> None:
    rng = np.random.default_rng(13)
    records = [record(i, rng) for i in range(30)]
    index = opened(fake)
    index.add(records)
    query = records[0].embedding
    cosines = {r.face_id: float(r.embedding @ query) for r in records}
    threshold = sorted(cosines.values(), reverse=True)[4] - 1e-4  # exactly five faces qualify

    hits = index.search(query, k=10, threshold=threshold)

    expected = sorted(cosines, key=lambda f: -cosines[f])[:5]
    assert [h.face_id for h in hits] == expected
    for hit in hits:
        assert hit.similarity == pytest.approx(cosines[hit.face_id], abs=1e-6)


def test_search_many_is_one_msearch_answering_as_search_does(fake: FakeElasticsearch) -> None:
    """Placing a request's faces into people asks for all their neighbours in one round trip; a
    search the cluster failed alone is asked again by itself."""
    rng = np.random.default_rng(15)
    records = [record(i, rng, collection="default" if i % 3 else "other") for i in range(30)]
    index = opened(fake)
    index.add(records)
    queries = np.stack([r.embedding for r in records[:6]])
    filters = SearchFilters(collection="default")
    one_by_one = [index.search(q, 4, 0.1, filters) for q in queries]
    searches = len(fake.calls("POST", f"/{INDEX}/_search"))

    assert index.search_many(queries, 4, 0.1, filters) == one_by_one
    (sent,) = fake.calls("POST", "/_msearch")
    lines = sent.ndjson()
    assert len(lines) == 12 and lines[0] == {"index": INDEX, "allow_partial_search_results": False}
    assert len(fake.calls("POST", f"/{INDEX}/_search")) == searches  # no search per face

    failed = error_body(429, "es_rejected_execution_exception", "rejected execution") | {"status": 429}
    answered = fake.calls("POST", "/_msearch")
    fake.script("POST", "/_msearch", Scripted(200, {"took": 1, "responses": [failed] * 6}))
    assert index.search_many(queries, 4, 0.1, filters) == one_by_one
    assert len(fake.calls("POST", "/_msearch")) == len(answered) + 1
    assert len(fake.calls("POST", f"/{INDEX}/_search")) == searches + 6
    assert index.search_many(queries[:0], 4, 0.1) == []


# --- reads, deletes, counts ---------------------------------------------------------------------------
def test_get_round_trips_a_record_from_an_8x_cluster(fake: FakeElasticsearch) -> None:
    original = record(0, np.random.default_rng(14), created_at="2024-05-01T12:00:00Z")
    index = opened(fake)
    index.add([original])

    fetched = index.get("face-0")

    assert len(fake.calls("GET", f"/{INDEX}/_doc/face-0")) == 1
    assert fetched is not None
    assert np.array_equal(fetched.embedding, original.embedding)
    assert fetched.embedding.dtype == np.float32
    assert (fetched.face_id, fetched.image_id, fetched.storage_key, fetched.model_pack) == (
        original.face_id,
        original.image_id,
        original.storage_key,
        original.model_pack,
    )
    assert (fetched.det_score, fetched.bbox, fetched.collection, fetched.created_at) == (
        original.det_score,
        original.bbox,
        original.collection,
        original.created_at,
    )


def test_get_asks_a_92_cluster_for_the_vector_it_keeps_out_of_source() -> None:
    with FakeElasticsearch(version="9.2.0", exclude_source_vectors=True) as server:
        original = record(0, np.random.default_rng(15))
        index = opened(server)
        index.add([original])

        fetched = index.get("face-0")

        first, second = server.calls("GET", f"/{INDEX}/_doc/face-0")
        assert "_source_exclude_vectors" not in first.query
        assert second.query == {"_source_exclude_vectors": "false"}
        assert fetched is not None
        assert np.array_equal(fetched.embedding, original.embedding)
        assert server.problems == []


def test_get_of_an_unknown_face_is_none(fake: FakeElasticsearch) -> None:
    assert opened(fake).get("no/such face") is None
    (call,) = fake.calls("GET", f"/{INDEX}/_doc/no%2Fsuch%20face")
    assert call.body == b""


@pytest.mark.parametrize(("refresh", "pre_refresh", "sent"), [("false", 1, "false"), ("wait_for", 0, "true")])
def test_delete_image_by_query(fake: FakeElasticsearch, refresh: str, pre_refresh: int, sent: str) -> None:
    rng = np.random.default_rng(16)
    index = opened(fake, es_refresh=refresh)
    index.add([record(i, rng) for i in range(5)])  # img-0: 0,1  img-1: 2,3  img-2: 4

    assert index.delete_image("img-1") == 2

    (call,) = fake.calls("POST", f"/{INDEX}/_delete_by_query")
    assert call.json() == {"query": {"term": {"image_id": "img-1"}}}
    assert call.query == {"conflicts": "proceed", "refresh": sent}
    # With ES_REFRESH=false, recent writes are made visible to the query first.
    assert len(fake.calls("POST", f"/{INDEX}/_refresh")) == pre_refresh
    assert sorted(fake.indices[INDEX].docs) == ["face-0", "face-1", "face-4"]
    assert index.delete_image("img-1") == 0


def test_count_with_and_without_filters(fake: FakeElasticsearch) -> None:
    rng = np.random.default_rng(17)
    index = opened(fake)
    index.add([record(i, rng, collection="team" if i < 3 else "default") for i in range(5)])

    assert index.count() == 5
    assert index.count(SearchFilters(collection="team")) == 3
    assert index.count(SearchFilters(collection="team", image_id="img-1")) == 1

    plain, by_collection, both = fake.calls("POST", f"/{INDEX}/_count")
    assert plain.body == b""
    assert by_collection.json() == {"query": {"bool": {"filter": [{"term": {"collection": "team"}}]}}}
    assert both.json()["query"]["bool"]["filter"] == [
        {"term": {"collection": "team"}},
        {"term": {"image_id": "img-1"}},
    ]


# --- health ---------------------------------------------------------------------------------------
def test_health_reports_a_healthy_index(fake: FakeElasticsearch) -> None:
    fake.cluster_status = "yellow"  # one node, replicas unassigned: serving
    index = opened(fake)
    index.add([record(0, np.random.default_rng(18))])

    health = index.health()

    assert health.ok
    assert health.backend == "elasticsearch"
    assert health.count == 1
    assert {k: health.detail[k] for k in ("exists", "model_pack", "dim", "mapping_ok", "cluster_status")} == {
        "exists": True,
        "model_pack": PACK,
        "dim": DIM,
        "mapping_ok": True,
        "cluster_status": "yellow",
    }


def test_health_is_not_ok_when_the_index_is_gone_or_red(fake: FakeElasticsearch) -> None:
    index = opened(fake)
    fake.cluster_status = "red"
    assert not index.health().ok

    del fake.indices[INDEX]
    health = index.health()
    assert not health.ok
    assert health.detail["exists"] is False


def test_health_without_the_monitor_privilege_still_checks_the_index(fake: FakeElasticsearch) -> None:
    index = opened(fake)
    fake.script(
        "GET",
        f"/_cluster/health/{INDEX}",
        Scripted(
            403, error_body(403, "security_exception", "action [cluster:monitor/health] is unauthorized")
        ),
    )

    health = index.health()

    assert health.ok
    assert health.detail["cluster_status"] is None
    assert health.count == 0


def test_health_of_an_unreachable_cluster_answers_at_once() -> None:
    index = ElasticsearchIndex(
        settings(f"http://127.0.0.1:{free_port()}", es_max_retries=5, es_retry_backoff=1)
    )

    started = time.monotonic()
    health = index.health()

    assert time.monotonic() - started < 2  # no retries, no backoff for /health
    assert not health.ok
    assert "unavailable" in health.detail["error"]


# --- failures ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("operation", ["search", "count", "get", "delete_image"])
def test_persistent_503_is_unavailable_after_bounded_retries(fake: FakeElasticsearch, operation: str) -> None:
    index = opened(fake, es_refresh="true")
    path = {
        "search": f"/{INDEX}/_search",
        "count": f"/{INDEX}/_count",
        "get": f"/{INDEX}/_doc/f",
        "delete_image": f"/{INDEX}/_delete_by_query",
    }[operation]
    method = "GET" if operation == "get" else "POST"
    fake.script(
        method, path, *[Scripted(503, error_body(503, "no_shard_available_action_exception", "x"))] * 9
    )
    calls = {
        "search": lambda: index.search(unit(np.random.default_rng(19)), 3, 0.5),
        "count": lambda: index.count(),
        "get": lambda: index.get("f"),
        "delete_image": lambda: index.delete_image("i"),
    }

    started = time.monotonic()
    with pytest.raises(IndexUnavailableError, match="after 3 attempt"):
        calls[operation]()

    assert time.monotonic() - started < 5
    assert len(fake.calls(method, path)) == RETRIES + 1


def test_a_transient_503_on_search_is_retried(fake: FakeElasticsearch) -> None:
    rng = np.random.default_rng(20)
    index = opened(fake)
    index.add([record(0, rng)])
    fake.script(
        "POST", f"/{INDEX}/_search", Scripted(503, error_body(503, "search_phase_execution_exception", ""))
    )

    hits = index.search(index.get("face-0").embedding, 1, 0.5)  # type: ignore[union-attr]

    assert [h.face_id for h in hits] == ["face-0"]
    assert len(fake.calls("POST", f"/{INDEX}/_search")) == 2


def test_a_response_slower_than_the_timeout_fails_within_bounded_time(fake: FakeElasticsearch) -> None:
    index = opened(fake, es_request_timeout=0.3)
    fake.script("POST", f"/{INDEX}/_count", *[Scripted(200, {"count": 1}, delay=5)] * 3)

    started = time.monotonic()
    with pytest.raises(IndexUnavailableError, match="ConnectionTimeout"):
        index.count()

    assert time.monotonic() - started < 3  # 3 attempts x 0.3 s + backoff, far below the 5 s delay
    assert len(fake.calls("POST", f"/{INDEX}/_count")) == RETRIES + 1


def test_connection_refused_is_unavailable() -> None:
    index = ElasticsearchIndex(settings(f"http://127.0.0.1:{free_port()}"))

    started = time.monotonic()
    with pytest.raises(IndexUnavailableError, match=r"unavailable after 3 attempt\(s\) \(ConnectionError\)"):
        index.open(DIM, PACK)
    assert time.monotonic() - started < 5


def test_connection_refused_during_bulk_is_unavailable(fake: FakeElasticsearch) -> None:
    index = opened(fake)
    fake.stop()

    with pytest.raises(IndexUnavailableError, match="2 of 2 face vector"):
        index.add([record(i, np.random.default_rng(21)) for i in range(2)])


def test_a_server_that_is_not_elasticsearch_is_refused() -> None:
    with FakeElasticsearch(product_header=False) as server:
        index = ElasticsearchIndex(settings(server))
        with pytest.raises(IndexUnavailableError, match="not Elasticsearch"):
            index.open(DIM, PACK)
        # A misconfiguration, not worth retrying (HEAD 404 carries no body, so PUT is the first check).
        assert [(r.method, r.path) for r in server.requests] == [("HEAD", f"/{INDEX}"), ("PUT", f"/{INDEX}")]


# --- authentication and secrets ---------------------------------------------------------------------
def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("overrides", "header"),
    [
        ({"es_api_key": "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="},
         "ApiKey VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="),
        ({"es_api_key": "key-id:key-secret"}, f"ApiKey {_b64('key-id:key-secret')}"),
        ({"es_username": "elastic", "es_password": "s3cret pass"}, f"Basic {_b64('elastic:s3cret pass')}"),
    ],
    ids=["encoded-api-key", "id-and-api-key", "basic"],
)  # fmt: skip
def test_authorization_header(overrides: dict[str, Any], header: str) -> None:
    with FakeElasticsearch(expected_authorization=header) as server:
        opened(server, **overrides)
        assert {r.headers.get("authorization") for r in server.requests} == {header}
        assert server.problems == []


def test_refused_credentials_are_unavailable_and_never_echoed(caplog: pytest.LogCaptureFixture) -> None:
    with FakeElasticsearch(expected_authorization="Basic other") as server, caplog.at_level(logging.DEBUG):
        index = ElasticsearchIndex(settings(server, es_username="elastic", es_password="hunter2-secret"))
        with pytest.raises(IndexUnavailableError, match="refused the credentials") as raised:
            index.open(DIM, PACK)
        assert len(server.requests) == 1  # 401 is not retried

    assert "hunter2-secret" not in str(raised.value)
    assert "hunter2-secret" not in caplog.text
    assert "hunter2-secret" not in repr(index.settings)


def test_api_key_from_ssm_parameter(aws_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    boto3.client("ssm").put_parameter(
        Name="/gpu-app/es", Type="SecureString", Value=json.dumps({"api_key": "ssm-key-encoded"})
    )
    with FakeElasticsearch(expected_authorization="ApiKey ssm-key-encoded") as server:
        monkeypatch.setenv("ES_HOSTS1", server.url)  # the seed's variable name
        monkeypatch.setenv("ES_SECRET_NAME", "/gpu-app/es")
        index = ElasticsearchIndex(Settings())
        index.open(DIM, PACK)

        assert server.calls("PUT", f"/{INDEX}")[0].headers["authorization"] == "ApiKey ssm-key-encoded"
        index.close()


def test_basic_auth_from_secrets_manager(aws_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    arn = boto3.client("secretsmanager").create_secret(
        Name="gpu-app/es", SecretString=json.dumps({"username": "svc", "password": "sm-pass"})
    )["ARN"]
    expected = f"Basic {_b64('svc:sm-pass')}"
    with FakeElasticsearch(expected_authorization=expected) as server:
        monkeypatch.setenv("ES_HOSTS", server.url)
        monkeypatch.setenv("ES_SECRET_NAME", arn)
        index = ElasticsearchIndex(Settings())
        index.open(DIM, PACK)

        assert {r.headers["authorization"] for r in server.requests} == {expected}


def test_a_secret_that_is_not_json_is_rejected_without_its_content(
    aws_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    boto3.client("ssm").put_parameter(Name="/gpu-app/es", Type="SecureString", Value="plain-secret-value")
    monkeypatch.setenv("ES_HOSTS", "http://127.0.0.1:9")
    monkeypatch.setenv("ES_SECRET_NAME", "/gpu-app/es")

    with pytest.raises(ValueError, match="must hold a JSON object") as raised:
        ElasticsearchIndex(Settings())
    assert "plain-secret-value" not in str(raised.value)


# --- settings -------------------------------------------------------------------------------------
def test_build_index_connects_with_the_settings_it_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    """One settings object: the index uses the Settings passed in, not a second read of the
    environment (which here names no cluster at all)."""
    for name in ("ES_HOSTS", "ES_HOSTS1", "ES_CLOUD_ID", "INDEX_NAME"):
        monkeypatch.delenv(name, raising=False)
    with FakeElasticsearch() as server:
        index = build_index(
            Settings(vector_index="elasticsearch", es_hosts=server.url, index_name="given-faces")
        )
        index.open(DIM, PACK)
        assert server.calls("PUT", "/given-faces")
        index.close()


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ElasticsearchSettings(es_hosts="http://x").es_verify_certs is True  # TLS checks by default
    monkeypatch.setenv("ES_HOSTS1", " https://es1:9200 , https://es2:9200,")
    monkeypatch.setenv("ES_INDEX_OPTIONS_TYPE", "bbq_hnsw")
    monkeypatch.setenv("ES_REFRESH", "WAIT_FOR")
    monkeypatch.setenv("ES_VERIFY_CERTS", "false")
    monkeypatch.setenv("INDEX_NAME", "faces-v2")

    s = Settings()  # the app's one settings object holds the Elasticsearch section

    assert s.hosts == ["https://es1:9200", "https://es2:9200"]
    assert (s.es_index_options_type, s.refresh, s.es_verify_certs, s.index_name) == (
        "bbq_hnsw",
        "wait_for",
        False,
        "faces-v2",
    )


@pytest.mark.parametrize(
    "env",
    [
        {"ES_INDEX_OPTIONS_TYPE": "flat"},
        {"ES_REFRESH": "sometimes"},
        {"INDEX_NAME": "Faces"},
        {"ES_HOSTS": "https://elastic:pw@es:9200"},
        {"ES_HNSW_M": "1"},
    ],
)
def test_invalid_settings_are_rejected(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"es_api_key": "k", "es_username": "u", "es_password": "p"}, "not both"),
        ({"es_username": "u"}, "both a username and a password"),
        ({"es_cloud_id": "name:abc"}, "exactly one of ES_HOSTS and ES_CLOUD_ID"),
        ({"es_hosts": None}, "exactly one of ES_HOSTS and ES_CLOUD_ID"),
    ],
)
def test_contradictory_connection_settings(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_client(settings("http://127.0.0.1:9", **overrides))


def test_cloud_id_selects_the_deployment_endpoint() -> None:
    cloud_id = "faces:" + _b64("eu-west-1.aws.found.io:443$es-uuid$kibana-uuid")
    client = build_client(settings("http://unused", es_hosts=None, es_cloud_id=cloud_id, es_api_key="k"))

    (node,) = client.transport.node_pool.all()
    assert (node.config.scheme, node.config.host, node.config.port) == (
        "https",
        "es-uuid.eu-west-1.aws.found.io",
        443,
    )
    client.close()


def test_the_embedded_default_never_imports_elasticsearch() -> None:
    code = (
        "import sys, gpu_app.index, gpu_app.index.elasticsearch;"
        "assert 'elasticsearch' not in sys.modules, 'imported at module level'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
