"""The people contract: the same clustering and people operations over every index backend.

Runs over the backends of test_index_contract.py: `embedded` (SQLite people beside the vectors),
`elasticsearch-fake` (the people and person-faces indexes against the HTTP fake) and, when ES_URL
names a cluster, `elasticsearch-live`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gpu_app.index.base import FaceRecord, VectorIndex
from gpu_app.people.base import PeopleConflictError, PeopleStore, PersonNotFoundError
from gpu_app.people.clustering import ClusterPolicy
from gpu_app.people.directory import FaceUnknownError, PeopleDirectory
from tests.gpu_app.test_index_contract import PACK, Backend, at_cosine, backend, face, unit

__all__ = ["backend"]  # the parametrised fixture, shared with the vector index contract

DIM = 32
POLICY = ClusterPolicy(threshold=0.6, min_faces=3)


def people_store(backend: Backend, index: VectorIndex, tmp_path: Path) -> PeopleStore:
    if backend.name == "embedded":
        from gpu_app.people.embedded import SqlitePeopleStore

        return SqlitePeopleStore(tmp_path / "people.sqlite3")
    from gpu_app.people.elasticsearch import ElasticsearchPeopleStore

    return ElasticsearchPeopleStore.beside(index)


@pytest.fixture
def directory(backend: Backend, tmp_path: Path) -> Iterator[PeopleDirectory]:
    index = backend.open(DIM)
    store = people_store(backend, index, tmp_path)
    yield PeopleDirectory(index, store, POLICY, PACK)
    if backend.name == "elasticsearch-live":  # the face index is deleted by its own fixture
        from gpu_app.people.elasticsearch import ElasticsearchPeopleStore

        assert isinstance(store, ElasticsearchPeopleStore)
        for name in (store.people_index, store.faces_index):
            store._client.options(ignore_status=404).indices.delete(index=name)
    store.close()


def identity_faces(
    rng: np.random.Generator, name: str, count: int, collection: str = "default"
) -> list[FaceRecord]:
    centre = unit(rng, DIM)
    return [
        face(f"{name}-{i}", at_cosine(centre, 0.9, rng), collection=collection, det_score=0.5 + i / 100)
        for i in range(count)
    ]


def ingest(directory: PeopleDirectory, records: list[FaceRecord]) -> None:
    """As the service does: index, then place, request by request."""
    for record in records:
        directory.index.add([record])
        directory.cluster_new([record])


def groups(directory: PeopleDirectory, collection: str | None = None) -> dict[str, set[str]]:
    people, _ = directory.store.list(collection, 0, 100, True)
    return {p.person_id: set(directory.store.faces(p.person_id, 0, 100)[0]) for p in people}


def test_faces_wait_then_form_a_person_then_join_it(directory: PeopleDirectory) -> None:
    rng = np.random.default_rng(3)
    ann = identity_faces(rng, "ann", 5)
    ingest(directory, ann[:2])
    assert groups(directory) == {}
    ingest(directory, ann[2:3])
    (person_id,) = groups(directory)
    assert groups(directory)[person_id] == {"ann-0", "ann-1", "ann-2"}
    ingest(directory, ann[3:])
    assert groups(directory) == {person_id: {f.face_id for f in ann}}
    person = directory.get(person_id)
    assert person.face_count == 5 and person.representative_face_id == "ann-4"  # best detection


def test_identities_and_collections_stay_apart(directory: PeopleDirectory) -> None:
    rng = np.random.default_rng(4)
    ann, bob = identity_faces(rng, "ann", 4), identity_faces(rng, "bob", 4)
    ann_elsewhere = [
        face(f"x-{r.face_id}", r.embedding, collection="other", det_score=r.det_score) for r in ann
    ]
    ingest(directory, [r for pair in zip(ann, bob, strict=True) for r in pair] + ann_elsewhere)
    assert sorted(map(sorted, groups(directory, "default").values())) == [
        [f.face_id for f in ann],
        [f.face_id for f in bob],
    ]
    assert list(groups(directory, "other").values()) == [{f.face_id for f in ann_elsewhere}]


def test_name_hide_page_merge_move_delete(directory: PeopleDirectory) -> None:
    rng = np.random.default_rng(5)
    ann, bob, cid = (
        identity_faces(rng, "ann", 5),
        identity_faces(rng, "bob", 4),
        identity_faces(rng, "cid", 3),
    )
    ingest(directory, ann + bob + cid)
    ids = {min(faces)[:3]: pid for pid, faces in groups(directory).items()}
    store = directory.store

    page, total = store.list("default", 0, 2, False)
    assert total == 3 and [p.person_id for p in page] == [ids["ann"], ids["bob"]]  # most faces first
    assert [p.person_id for p in store.list("default", 2, 2, False)[0]] == [ids["cid"]]
    assert store.faces(ids["ann"], 1, 2) == (["ann-3", "ann-2"], 5)

    assert store.update(ids["ann"], name="Ann", set_name=True, hidden=None).name == "Ann"
    assert store.update(ids["cid"], name=None, set_name=False, hidden=True).hidden
    assert [p.person_id for p in store.list("default", 0, 10, False)[0]] == [ids["ann"], ids["bob"]]
    assert store.update(ids["ann"], name=None, set_name=False, hidden=None).name == "Ann"

    before = groups(directory)
    with pytest.raises(PeopleConflictError):
        directory.merge(ids["ann"], ids["ann"])
    with pytest.raises(PersonNotFoundError):
        directory.merge("0" * 32, ids["ann"])
    with pytest.raises(FaceUnknownError):
        directory.move_face("nobody-0", ids["ann"])
    with pytest.raises(PersonNotFoundError):
        directory.move_face("ann-0", "0" * 32)
    assert groups(directory) == before

    merged = directory.merge(ids["bob"], ids["ann"])
    assert merged.face_count == 9 and merged.name == "Ann"
    assert store.get(ids["bob"]) is None
    assert directory.move_face("bob-0", ids["cid"]).face_count == 4
    assert directory.delete(ids["cid"]) == 4
    assert store.person_of(["cid-0", "bob-0", "ann-0"]) == {"ann-0": ids["ann"]}


def test_recluster_rebuilds_the_same_people_and_keeps_names(directory: PeopleDirectory) -> None:
    rng = np.random.default_rng(6)
    records = identity_faces(rng, "ann", 4) + identity_faces(rng, "bob", 3) + identity_faces(rng, "lone", 1)
    ingest(directory, records)
    before = groups(directory)
    ann = next(pid for pid, faces in before.items() if "ann-0" in faces)
    directory.store.update(ann, name="Ann", set_name=True, hidden=None)
    bob = next(pid for pid, faces in before.items() if "bob-0" in faces)
    directory.merge(bob, ann)  # a user's merge is undone by a full re-cluster; the name stays

    result = directory.recluster("default", records)
    assert (result.faces, result.people, result.unassigned, result.kept_names) == (8, 2, 1, 1)
    after = groups(directory)
    assert sorted(map(sorted, after.values())) == sorted(map(sorted, before.values()))
    assert directory.get(ann).name == "Ann" and after[ann] == before[ann]


def test_an_unnamed_person_left_without_faces_goes_a_named_one_stays(directory: PeopleDirectory) -> None:
    rng = np.random.default_rng(8)
    ann, bob = identity_faces(rng, "ann", 3), identity_faces(rng, "bob", 3)
    ingest(directory, ann + bob)
    by_first = {min(faces): pid for pid, faces in groups(directory).items()}
    ann_id, bob_id = by_first["ann-0"], by_first["bob-0"]
    directory.store.update(bob_id, name="Bob", set_name=True, hidden=None)
    directory.forget_faces([f.face_id for f in ann])  # their images were deleted
    directory.forget_faces([f.face_id for f in bob])
    assert directory.store.get(ann_id) is None
    kept = directory.get(bob_id)
    assert (kept.name, kept.face_count, kept.representative_face_id) == ("Bob", 0, None)

    carl = identity_faces(rng, "carl", 3)
    ingest(directory, carl)
    carl_id = directory.store.person_of(["carl-0"])["carl-0"]
    new_person = None
    for record in carl:  # moving every face away leaves the unnamed person empty: it goes
        new_person = directory.move_face(record.face_id, bob_id)
    assert new_person is not None and new_person.face_count == 3
    assert directory.store.get(carl_id) is None


def test_a_request_of_faces_is_placed_at_once_as_face_by_face(directory: PeopleDirectory) -> None:
    """The service indexes a request's faces, then places them all at once (one batched search per
    collection): each identity becomes one person, as when its faces arrive one by one."""
    rng = np.random.default_rng(9)
    trios = zip(*(identity_faces(rng, name, 4) for name in ("ann", "bob", "cid")), strict=True)
    records = [record for trio in trios for record in trio]
    elsewhere = identity_faces(rng, "dee", 3, collection="other")
    directory.index.add(records + elsewhere)
    directory.cluster_new(records + elsewhere)
    assert sorted(map(sorted, groups(directory, "default").values())) == [
        [f"{name}-{i}" for i in range(4)] for name in ("ann", "bob", "cid")
    ]
    assert list(groups(directory, "other").values()) == [{f.face_id for f in elsewhere}]


def test_a_request_reads_and_writes_its_faces_people_once(
    directory: PeopleDirectory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One read of the assignments of the request's faces and their neighbours, one write of the
    new ones (one transaction, one bulk request), whatever the number of faces."""
    rng = np.random.default_rng(10)
    earlier = identity_faces(rng, "ann", 3)
    ingest(directory, earlier)
    (ann,) = groups(directory)
    ann_more = [face(f"ann-more-{i}", at_cosine(earlier[0].embedding, 0.95, rng)) for i in range(3)]
    records = ann_more + identity_faces(rng, "bob", 4) + identity_faces(rng, "cid", 1)
    directory.index.add(records)
    calls: list[str] = []
    store = directory.store

    def counted(name: str) -> Callable[..., Any]:
        method = getattr(store, name)

        def call(*args: Any) -> Any:
            calls.append(name)
            return method(*args)

        return call

    for name in ("person_of", "assign"):
        monkeypatch.setattr(store, name, counted(name))

    placed = directory.cluster_new(records)

    assert calls == ["person_of", "assign"]
    assert {placed[f"ann-more-{i}"] for i in range(3)} == {ann}
    bob = {placed[f"bob-{i}"] for i in range(4)}
    assert len(bob) == 1 and bob != {ann} and "cid-0" not in placed
    monkeypatch.undo()
    assert groups(directory)[ann] == {f.face_id for f in earlier + ann_more}
