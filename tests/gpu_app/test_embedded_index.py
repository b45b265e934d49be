"""The embedded index beyond the shared contract: its FAISS cache is always rebuilt from SQLite."""

from __future__ import annotations

import dataclasses
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gpu_app.index import FaceRecord, SearchFilters
from gpu_app.index.embedded import EmbeddedIndex

DIM = 32


def records(n: int, seed: int = 0, image: str = "img") -> list[FaceRecord]:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [
        FaceRecord(
            face_id=f"{image}-{seed}-{i}",
            image_id=f"{image}{i % 3}",
            storage_key=f"k/{i}.jpg",
            model_pack="pack",
            det_score=0.9,
            bbox=(0.0, 0.0, 1.0, 1.0),
            embedding=vectors[i],
        )
        for i in range(n)
    ]


def opened(path: Path) -> EmbeddedIndex:
    index = EmbeddedIndex(path)
    index.open(DIM, "pack")
    return index


def top(index: EmbeddedIndex, vector: np.ndarray) -> list[str]:
    return [h.face_id for h in index.search(vector, 5, -1.0)]


def test_cache_saved_on_close_and_reused(tmp_path: Path) -> None:
    index = opened(tmp_path)
    data = records(50)
    index.add(data)
    expected = top(index, data[7].embedding)
    index.close()
    assert (tmp_path / "faces.faiss").is_file()
    again = opened(tmp_path)
    assert top(again, data[7].embedding) == expected
    assert again.count() == 50


def test_missing_or_stale_cache_is_rebuilt_from_sqlite(tmp_path: Path) -> None:
    index = opened(tmp_path)
    data = records(40)
    index.add(data[:20])
    index.close()  # cache saved at this generation
    index = opened(tmp_path)
    index.add(data[20:])
    assert index._db is not None
    index._db.close()
    index._db = None
    stale = opened(tmp_path)
    assert stale.count() == 40
    assert top(stale, data[30].embedding)[0] == data[30].face_id
    stale.close()
    (tmp_path / "faces.faiss").unlink()
    rebuilt = opened(tmp_path)
    assert top(rebuilt, data[30].embedding)[0] == data[30].face_id


def test_corrupt_cache_file_is_rebuilt(tmp_path: Path) -> None:
    index = opened(tmp_path)
    data = records(10)
    index.add(data)
    index.close()
    (tmp_path / "faces.faiss").write_bytes(b"garbage")
    assert top(opened(tmp_path), data[3].embedding)[0] == data[3].face_id


def test_writes_of_another_process_are_seen(tmp_path: Path) -> None:
    index = opened(tmp_path)
    index.add(records(5))
    assert index.count() == 5
    script = (
        "import sys; sys.path.insert(0, '.');"
        "from pathlib import Path;"
        "from tests.gpu_app.test_embedded_index import opened, records;"
        f"i = opened(Path({str(tmp_path)!r})); i.add(records(7, seed=9, image='other')); i.close()"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=Path(__file__).resolve().parents[2])
    other = records(7, seed=9, image="other")
    assert index.count() == 12
    assert top(index, other[2].embedding)[0] == other[2].face_id


def test_upsert_and_delete_keep_cache_and_records_in_step(tmp_path: Path) -> None:
    index = opened(tmp_path)
    data = records(9)
    index.add(data)
    index.add(data[:3])  # same face ids again: replaced, not duplicated
    assert index.count() == 9
    assert index.delete_image("img0") == 3
    assert index.count() == 6
    assert all(h.image_id != "img0" for h in index.search(data[0].embedding, 9, -1.0))
    assert index.count(SearchFilters(image_id="img1")) == 3
    assert [len(batch) for batch in index.iter_records(batch_size=4)] == [4, 2]


# --- the approximate (IVF) path, with a low exact_limit so a few thousand vectors reach it -------


def clustered(n: int, seed: int, collection: str = "default", prefix: str = "c") -> list[FaceRecord]:
    """Faces of n/8 people, 8 each (cosine ~0.8 to their person): neighbours exist, like real faces."""
    rng = np.random.default_rng(seed)
    people = rng.normal(size=(n // 8 + 1, DIM)).astype(np.float32)
    vectors = people[np.arange(n) // 8] + rng.normal(size=(n, DIM)).astype(np.float32) * 0.6
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [
        FaceRecord(
            face_id=f"{prefix}{seed}-{i}",
            image_id=f"{prefix}img{i}",
            storage_key=f"k/{i}.jpg",
            model_pack="pack",
            det_score=0.9,
            bbox=(0.0, 0.0, 1.0, 1.0),
            embedding=vectors[i],
            collection=collection,
        )
        for i in range(n)
    ]


def approximate(path: Path, exact_limit: int = 500, probes: int = 16) -> EmbeddedIndex:
    index = EmbeddedIndex(path, exact_limit=exact_limit, probes=probes)
    index.open(DIM, "pack")
    return index


def exact_ids(data: list[FaceRecord], query: np.ndarray, k: int) -> list[str]:
    matrix = np.stack([r.embedding for r in data])
    return [data[i].face_id for i in np.argsort(-(matrix @ query), kind="stable")[:k]]


def recall_at_10(index: EmbeddedIndex, data: list[FaceRecord], queries: list[FaceRecord]) -> float:
    found = [
        len(set(exact_ids(data, q.embedding, 10)) & {h.face_id for h in index.search(q.embedding, 10, -1.0)})
        for q in queries
    ]
    return sum(found) / (10 * len(queries))


def test_above_the_exact_limit_search_is_approximate_with_high_recall(tmp_path: Path) -> None:
    index = approximate(tmp_path)
    data = clustered(4000, seed=1)
    for start in range(0, len(data), 1000):
        index.add(data[start : start + 1000])
    assert index._faiss.nlist >= 32  # IVF, not the exact flat index
    assert index.count() == 4000
    queries = clustered(400, seed=1, prefix="q")[::8]  # new faces of stored people
    assert recall_at_10(index, data, queries) >= 0.95
    hits = index.search(data[123].embedding, 3, -1.0)
    assert hits[0].face_id == data[123].face_id
    assert hits[0].similarity > 0.9999  # re-scored from the stored float32 vector: exact


def test_approximate_collection_filter_finds_a_small_collection_exactly(tmp_path: Path) -> None:
    index = approximate(tmp_path)
    crowd = clustered(3000, seed=2)
    rare = clustered(24, seed=3, collection="rare", prefix="r")
    index.add(crowd)
    index.add(rare)
    query = clustered(8, seed=3, prefix="rq")[0].embedding
    hits = index.search(query, 10, -1.0, SearchFilters(collection="rare"))
    assert [h.face_id for h in hits] == exact_ids(rare, query, 10)
    assert {h.collection for h in hits} == {"rare"}
    # An upsert that moves a face out of the collection, and a delete, update the cached membership.
    moved = rare[0]
    index.add([FaceRecord(**{**{f: getattr(moved, f) for f in moved.__slots__}, "collection": "default"})])
    index.delete_image(rare[1].image_id)
    remaining = {h.face_id for h in index.search(query, 30, -1.0, SearchFilters(collection="rare"))}
    assert remaining == {r.face_id for r in rare[2:]}
    assert index.search(query, 5, -1.0, SearchFilters(collection="nobody")) == []
    assert [h.face_id for h in index.search(query, 5, -1.0, SearchFilters(image_id=rare[5].image_id))] == [
        rare[5].face_id
    ]


def test_approximate_index_is_saved_and_reopened_without_retraining(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = approximate(tmp_path)
    data = clustered(2000, seed=4)
    index.add(data)
    expected = top(index, data[77].embedding)
    index.close()

    def no_rebuild(self: EmbeddedIndex) -> None:
        raise AssertionError("reopened index was rebuilt, not loaded from faces.faiss")

    with monkeypatch.context() as patch:
        patch.setattr(EmbeddedIndex, "_rebuild_faiss", no_rebuild)
        again = approximate(tmp_path)
        assert again._faiss.nlist >= 32
        assert top(again, data[77].embedding) == expected
    again.close()


def test_stale_or_outgrown_approximate_index_is_rebuilt(tmp_path: Path) -> None:
    index = approximate(tmp_path)
    data = clustered(8000, seed=5)
    index.add(data[:1000])
    lists = index._faiss.nlist
    index.add(data[1000:])  # 8x the vectors: lists retrained for the new size
    assert index._faiss.nlist >= 2 * lists
    assert index._faiss.ntotal == 8000
    index.close()
    writer = approximate(tmp_path)
    extra = clustered(16, seed=6, prefix="x")
    writer.add(extra)
    assert writer._db is not None
    writer._db.close()  # a crash: the saved cache is now a generation behind
    writer._db = None
    reopened = approximate(tmp_path)
    assert reopened._faiss.ntotal == 8016
    assert top(reopened, extra[3].embedding)[0] == extra[3].face_id


def subspace_faces(n: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(faces, new faces of every 30th person) of n/8 people whose directions span a 64-d subspace
    (real embeddings span far fewer directions than their dimensions): a face's 9th and 10th
    neighbours are strangers at cosine ~0.4, near ties that only a search scanning enough lists
    finds (bench/index.py's data)."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(dim, 64)))[0].astype(np.float32)
    people = rng.normal(size=(n // 8, 64)).astype(np.float32) @ basis.T
    people /= np.linalg.norm(people, axis=1, keepdims=True)

    def new_faces(of: np.ndarray) -> np.ndarray:
        faces = of + rng.normal(size=of.shape).astype(np.float32) * (0.75 / np.sqrt(dim))
        return faces / np.linalg.norm(faces, axis=1, keepdims=True)

    return new_faces(people[np.arange(n) // 8]), new_faces(people[::30])


def test_approximate_search_finds_the_strangers_among_the_ten_nearest(tmp_path: Path) -> None:
    dim = 256
    vectors, queries = subspace_faces(40_000, dim, seed=7)
    index = EmbeddedIndex(tmp_path, exact_limit=1000)
    index.open(dim, "pack")
    for start in range(0, len(vectors), 1000):
        index.add(
            [
                FaceRecord(
                    face_id=f"f{i}",
                    image_id=f"i{i}",
                    storage_key="k",
                    model_pack="pack",
                    det_score=0.9,
                    bbox=(0.0, 0.0, 1.0, 1.0),
                    embedding=vectors[i],
                )
                for i in range(start, start + 1000)
            ]
        )
    assert index.probes == index._faiss.nlist // 2  # half the lists by default
    found = 0
    for query in queries:
        truth = {f"f{i}" for i in np.argsort(-(vectors @ query))[:10]}
        found += len(truth & {h.face_id for h in index.search(query, 10, -1.0)})
    # The IVF over 8-bit codes that scanned 48 of its 256 lists found 0.951 here; this index 0.978.
    assert found / (10 * len(queries)) >= 0.97


def test_a_missing_16_bit_copy_is_rebuilt_not_trusted(tmp_path: Path) -> None:
    index = approximate(tmp_path)
    data = clustered(2000, seed=8)
    index.add(data)
    expected = top(index, data[5].embedding)
    index.close()
    (tmp_path / "faces.bf16.npy").unlink()  # e.g. a disk that filled while saving
    again = approximate(tmp_path)
    assert again._halves is not None and len(again._halves) > 2000
    assert top(again, data[5].embedding) == expected
    again.close()


def test_the_float16_copy_of_an_earlier_version_opens_without_a_rebuild(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = approximate(tmp_path)
    data = clustered(2000, seed=12)
    index.add(data)
    expected = [top(index, r.embedding) for r in data[:40:4]]
    index.close()
    # The files an earlier version left: the same FAISS file and marker, the copy as float16.
    saved = np.load(tmp_path / "faces.bf16.npy")
    as_float32 = (saved.astype(np.uint32) << 16).view(np.float32)
    np.save(tmp_path / "faces.f16.npy", as_float32.astype(np.float16))
    (tmp_path / "faces.bf16.npy").unlink()

    def no_rebuild(self: EmbeddedIndex) -> None:
        raise AssertionError("rebuilt from SQLite instead of reading the float16 copy")

    monkeypatch.setattr(EmbeddedIndex, "_rebuild_faiss", no_rebuild)
    again = approximate(tmp_path)
    assert again._halves is not None and again._halves.dtype == np.uint16
    assert [top(again, r.embedding) for r in data[:40:4]] == expected
    again.close()
    assert (tmp_path / "faces.bf16.npy").is_file()  # converted once, saved in the new format
    assert not (tmp_path / "faces.f16.npy").exists()


def test_the_bfloat16_rescore_is_within_a_rounding_of_the_exact_score(tmp_path: Path) -> None:
    index = approximate(tmp_path)
    data = clustered(2000, seed=13)
    index.add(data)
    rows = np.asarray(sorted(index._ids_of_faces([r.face_id for r in data]).values()), dtype=np.int64)
    stored = np.stack([r.embedding for r in data])  # ids follow insertion order
    for query in stored[:5]:
        exact = stored @ query
        rescored = index._rescore(rows, query)
        # bfloat16 keeps 8 significant bits: each product is off by at most 2**-9 of itself.
        assert np.all(np.abs(rescored - exact) <= 2.0**-9 * np.abs(stored) @ np.abs(query) + 1e-6)
    index.close()


def test_a_batch_sqlite_refuses_leaves_no_vector_in_the_cache(tmp_path: Path) -> None:
    # The cache takes a batch on another thread while SQLite writes it: when SQLite refuses the
    # batch, the vectors the cache already took must not outlive the rollback.
    index = approximate(tmp_path)
    kept = clustered(1200, seed=9)
    index.add(kept)
    refused = clustered(40, seed=10, prefix="bad")
    fields = {f: getattr(refused[0], f) for f in refused[0].__slots__}
    unbindable = FaceRecord(**{**fields, "image_id": object()})  # SQLite cannot bind it: the batch fails
    with pytest.raises(sqlite3.Error):
        index.add([*refused[1:], unbindable])
    assert index.count() == 1200
    assert refused[5].face_id not in top(index, refused[5].embedding)
    assert index._faiss.ntotal == 1200


@pytest.mark.parametrize("exact_limit", [20_000, 500], ids=["exact", "approximate"])
def test_search_many_answers_each_query_as_search_does(tmp_path: Path, exact_limit: int) -> None:
    index = approximate(tmp_path, exact_limit=exact_limit)
    data = clustered(2000, seed=4) + clustered(200, seed=5, collection="small", prefix="s")
    for start in range(0, len(data), 1000):
        index.add(data[start : start + 1000])
    queries = np.stack([r.embedding for r in data[::97]])
    for threshold, filters in [
        (-1.0, None),
        (0.5, None),
        (0.5, SearchFilters(collection="small")),
        (-1.0, SearchFilters(image_id="cimg3")),
    ]:
        batched = index.search_many(queries, 6, threshold, filters)
        assert batched == [index.search(q, 6, threshold, filters) for q in queries]
        assert any(batched) and all(h.similarity >= threshold for hits in batched for h in hits)
    assert index.search_many(queries[:0], 6, 0.5) == []


def test_people_placement_asks_the_index_once_per_request(tmp_path: Path) -> None:
    from gpu_app.people.clustering import ClusterPolicy
    from gpu_app.people.directory import PeopleDirectory
    from gpu_app.people.embedded import SqlitePeopleStore

    index = opened(tmp_path)
    data = clustered(40, seed=6)
    index.add(data)
    calls: list[int] = []
    search_many = index.search_many

    def counted(queries: np.ndarray, *args: object, **kwargs: object) -> list:
        calls.append(len(queries))
        return search_many(queries, *args, **kwargs)  # type: ignore[arg-type]

    index.search_many = counted  # type: ignore[method-assign]
    index.search = lambda *args, **kwargs: pytest.fail("one search per face")  # type: ignore[method-assign]
    store = SqlitePeopleStore(tmp_path / "people.sqlite3")
    try:
        placed = PeopleDirectory(index, store, ClusterPolicy(threshold=0.5, min_faces=3), "pack").cluster_new(
            data
        )
    finally:
        store.close()
    assert calls == [40]
    assert len(set(placed.values())) == 5  # 5 people of 8 faces each


def test_a_retrain_as_the_index_grows_reads_the_bfloat16_copy_with_upserts_and_deletes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = approximate(tmp_path)
    first = clustered(600, seed=14)
    index.add(first)  # past exact_limit: 32 lists
    assert index._faiss.nlist == 32
    assert index.delete_image(first[3].image_id) == 1
    moved = [
        dataclasses.replace(r, embedding=-r.embedding)  # the same face_ids, new vectors
        for r in first[10:14]
    ]
    index.add(moved)

    def no_sqlite_read(self: EmbeddedIndex) -> None:
        raise AssertionError("a retrain while the copy is current read every row from SQLite")

    monkeypatch.setattr(EmbeddedIndex, "_stored_vectors", no_sqlite_read)
    monkeypatch.setattr(EmbeddedIndex, "_stored_halves", no_sqlite_read)
    rest = clustered(3600, seed=15, prefix="d")
    for start in range(0, len(rest), 600):
        index.add(rest[start : start + 600])
    assert index._faiss.nlist == 64  # retrained as it grew past 4,096
    assert index._faiss.ntotal == index.count() == 600 - 1 + 3600
    assert first[3].face_id not in {h.face_id for h in index.search(first[3].embedding, 10, -1.0)}
    for record in moved:
        best = index.search(record.embedding, 1, -1.0)[0]
        assert best.face_id == record.face_id and best.similarity == pytest.approx(1.0, abs=1e-5)
    assert recall_at_10(index, first + rest, rest[::97]) >= 0.9
    index.close()


def test_the_saved_bfloat16_copy_holds_the_rows_in_use_not_the_room_grown_ahead(tmp_path: Path) -> None:
    index = approximate(tmp_path)
    first, more = clustered(600, seed=16), clustered(100, seed=17, prefix="m")
    index.add(first)
    index.add(more)  # past the copy's end: it doubles, room for ~1,200 rows
    assert index._halves is not None and len(index._halves) > 701
    expected = top(index, more[3].embedding)
    index.close()
    assert np.load(tmp_path / "faces.bf16.npy").shape == (701, DIM)  # row ids 1..700, row 0 unused
    again = approximate(tmp_path)
    assert top(again, more[3].embedding) == expected
    again.add(clustered(10, seed=18, prefix="n"))  # grows again from the trimmed copy
    assert again.count() == 710
    again.close()


def test_growing_out_of_exact_search_sizes_the_lists_ahead_and_skips_a_retrain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rebuilds: list[int] = []
    original = EmbeddedIndex._rebuild_faiss

    def counted(self: EmbeddedIndex) -> None:
        original(self)
        rebuilds.append(_nlist_of(self))

    monkeypatch.setattr(EmbeddedIndex, "_rebuild_faiss", counted)
    index = EmbeddedIndex(tmp_path, exact_limit=1100)
    index.open(DIM, "pack")
    data = clustered(5000, seed=19)
    for start in range(0, len(data), 500):
        index.add(data[start : start + 500])
    # 64 lists from 1,500 vectors on (the lists of 6,000): no retrain at 4,096, where 32 lists would
    # have doubled; every vector is still found.
    assert rebuilds == [0, 64]
    assert index._faiss.ntotal == 5000
    assert recall_at_10(index, data, data[::250]) >= 0.9
    index.close()


def _nlist_of(index: EmbeddedIndex) -> int:
    return int(getattr(index._faiss, "nlist", 0))
