"""The density rule (pure) and the SQLite people store, without the model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gpu_app.people.base import Assignment
from gpu_app.people.clustering import ClusterPolicy, cluster_vectors, decide, pairwise_scores
from gpu_app.people.embedded import SqlitePeopleStore

POLICY = ClusterPolicy(threshold=0.6, min_faces=3)


def test_a_face_joins_the_person_of_its_nearest_close_neighbour() -> None:
    decision = decide("new", [("a", 0.9), ("b", 0.8)], {"a": "P1", "b": "P2"}, POLICY)
    assert decision.person == "P1" and decision.members == ("new",)


def test_waiting_neighbours_join_with_the_face_that_joins() -> None:
    decision = decide("new", [("w", 0.95), ("a", 0.7)], {"a": "P1"}, POLICY)
    assert decision.person == "P1" and decision.members == ("new", "w")


def test_neighbours_below_the_threshold_do_not_count() -> None:
    assert decide("new", [("a", 0.59), ("w1", 0.5), ("w2", 0.1)], {"a": "P1"}, POLICY).waits


def test_a_new_person_needs_min_faces_similar_unassigned_faces() -> None:
    assert decide("f2", [("f1", 0.9)], {}, POLICY).waits
    nobody: dict[str, str] = {}
    decision = decide("f3", [("f1", 0.9), ("f2", 0.8)], nobody, POLICY)
    assert decision.creates and decision.members == ("f3", "f1", "f2")
    assert decide("f1", [], {}, ClusterPolicy(threshold=0.6, min_faces=1)).creates


def test_a_face_is_never_its_own_neighbour() -> None:
    assert decide("f", [("f", 1.0), ("g", 0.9)], {}, POLICY).waits


def test_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="cosine"):
        ClusterPolicy(threshold=1.5)
    with pytest.raises(ValueError, match="at least 1"):
        ClusterPolicy(threshold=0.5, min_faces=0)


def _blobs(rng: np.random.Generator, people: int, faces: int, spread: float, dim: int = 64) -> np.ndarray:
    centres = rng.normal(size=(people, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    points = np.repeat(centres, faces, axis=0) + rng.normal(scale=spread, size=(people * faces, dim))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def test_cluster_vectors_recovers_separated_identities_in_any_arrival_order() -> None:
    rng = np.random.default_rng(16)
    vectors = _blobs(rng, people=20, faces=10, spread=0.06)
    truth = np.repeat(np.arange(20), 10)
    order = rng.permutation(len(vectors))
    labels = cluster_vectors(vectors[order], POLICY)
    scores = pairwise_scores(labels, truth[order])
    assert scores == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert labels.max() + 1 == 20


def test_a_lone_face_waits_and_far_faces_never_link() -> None:
    rng = np.random.default_rng(1)
    vectors = _blobs(rng, people=3, faces=1, spread=0.0)
    assert (cluster_vectors(vectors, POLICY) == -1).all()
    assert cluster_vectors(np.zeros((0, 8), dtype=np.float32), POLICY).shape == (0,)


def test_pairwise_scores_count_unassigned_faces_as_apart() -> None:
    truth = np.array([0, 0, 1, 1])
    assert pairwise_scores(np.array([5, 5, -1, -1]), truth) == {"precision": 1.0, "recall": 0.5, "f1": 2 / 3}
    merged = pairwise_scores(np.array([0, 0, 0, 0]), truth)
    assert merged["recall"] == 1.0 and merged["precision"] == pytest.approx(1 / 3)


def test_sqlite_store_survives_reopening_and_cascades_person_deletes(tmp_path: Path) -> None:
    path = tmp_path / "people.sqlite3"
    store = SqlitePeopleStore(path)
    store.create("c", "2026-01-01T00:00:00Z", "p" * 32, name="Ann")
    store.assign([Assignment("f1", "p" * 32, "c", 0.9), Assignment("f2", "p" * 32, "c", 0.95)])
    store.close()
    store = SqlitePeopleStore(path)
    person = store.get("p" * 32)
    assert person is not None and person.name == "Ann" and person.face_count == 2
    assert person.representative_face_id == "f2"  # best detection
    assert store.faces("p" * 32, 0, 10) == (["f2", "f1"], 2)
    store.delete("p" * 32)
    assert store.person_of(["f1", "f2"]) == {}
    store.close()


def test_large_collections_use_an_approximate_knn_that_still_finds_the_people() -> None:
    from gpu_app.people.clustering import EXACT_KNN_LIMIT

    rng = np.random.default_rng(7)
    people = EXACT_KNN_LIMIT // 8 + 100
    vectors = _blobs(rng, people=people, faces=8, spread=0.06)
    labels = cluster_vectors(vectors, POLICY)
    truth = np.repeat(np.arange(people), 8)
    sample = slice(0, 4000)
    scores = pairwise_scores(labels[sample], truth[sample])
    assert scores["precision"] == 1.0 and scores["recall"] > 0.95
