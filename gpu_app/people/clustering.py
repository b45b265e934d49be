"""The density rule that groups faces into people, shared by ingest, re-cluster and materialize.

After Immich's facial recognition (server person.service: `maxDistance`, `minFaces`): a face joins
the person of its nearest neighbour within the pack's threshold; a face with no such neighbour
waits until enough similar unassigned faces (`min_faces`, itself included) are within the threshold
of each other's newest member, and then they form a new person together. Waiting faces within the
threshold of a face that joins a person join with it (Immich does this in a later "deferred" pass).

One rule for every path: `decide` is applied face by face in arrival order, whether the neighbours
come from the live index (ingest) or from an in-memory k-NN of a whole collection (`cluster_vectors`),
so a re-cluster of a collection gives what ingesting its faces in that order gave.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

K = TypeVar("K", bound=Hashable)
P = TypeVar("P", bound=Hashable)

DEFAULT_MIN_FACES = 3  # Immich's default
DEFAULT_NEIGHBOURS = 16  # enough for the nearest person and a min_faces group; each costs a row read


@dataclass(frozen=True, slots=True)
class ClusterPolicy:
    threshold: float  # cosine similarity at or above which two faces are taken as the same person
    min_faces: int = DEFAULT_MIN_FACES
    neighbours: int = DEFAULT_NEIGHBOURS  # nearest faces looked at per new face

    def __post_init__(self) -> None:
        if not -1.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold {self.threshold} is not a cosine similarity in [-1, 1]")
        if self.min_faces < 1 or self.neighbours < 1:
            raise ValueError("min_faces and neighbours must be at least 1")


@dataclass(frozen=True, slots=True)
class Decision(Generic[K, P]):
    """`members` (the new face first) join `person`, or form a new person when `person` is None;
    no members: the face waits."""

    person: P | None
    members: tuple[K, ...]

    @property
    def waits(self) -> bool:
        return not self.members

    @property
    def creates(self) -> bool:
        return bool(self.members) and self.person is None


def decide(
    face: K,
    neighbours: Sequence[tuple[K, float]],
    person_of: Mapping[K, P],
    policy: ClusterPolicy,
) -> Decision[K, P]:
    """Where `face` goes, given its neighbours (face, cosine), best first, and current assignments."""
    close = [other for other, similarity in neighbours if other != face and similarity >= policy.threshold]
    waiting = tuple(other for other in close if other not in person_of)
    nearest_person = next((person_of[other] for other in close if other in person_of), None)
    if nearest_person is not None:
        return Decision(nearest_person, (face, *waiting))
    if 1 + len(waiting) >= policy.min_faces:
        return Decision(None, (face, *waiting))
    return Decision(None, ())


EXACT_KNN_LIMIT = 50_000  # above it, an inverted-file index: exact k-NN is quadratic in the faces
_IVF_PROBES = 32


def knn(vectors: np.ndarray, k: int, batch: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """k nearest neighbours (inner product of L2-normalised rows) of every row, best first: exact up
    to EXACT_KNN_LIMIT rows, then an IVF (4 sqrt(n) lists, 32 probed) trained on a sample. Missing
    neighbours (an IVF may find fewer than k) have id -1 and similarity -inf."""
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = vectors.shape
    index: faiss.Index
    if n > EXACT_KNN_LIMIT:
        lists = int(4 * np.sqrt(n))
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
        sample = np.random.default_rng(0).choice(n, size=min(n, lists * 40), replace=False)
        ivf.train(vectors[np.sort(sample)])
        ivf.nprobe = _IVF_PROBES
        index = ivf
    else:
        index = faiss.IndexFlatIP(dim)
    index.add(vectors)
    k = min(k, n)
    sims = np.empty((n, k), dtype=np.float32)
    ids = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, batch):
        rows = slice(start, start + batch)
        sims[rows], ids[rows] = index.search(vectors[rows], k)
    sims[ids < 0] = -np.inf
    return sims, ids


def cluster_vectors(
    vectors: np.ndarray, policy: ClusterPolicy, neighbours: tuple[np.ndarray, np.ndarray] | None = None
) -> np.ndarray:
    """Labels (0, 1, ... in order of creation; -1 = waiting) of rows given in arrival order.
    `neighbours`: a `knn(vectors, policy.neighbours + 1)` already computed (the benchmark times it)."""
    labels = np.full(len(vectors), -1, dtype=np.int64)
    if len(vectors) == 0:
        return labels
    # One more than asked: a face is its own nearest neighbour. Only earlier faces count, as at ingest.
    sims, ids = neighbours if neighbours is not None else knn(vectors, policy.neighbours + 1)
    person_of: dict[int, int] = {}
    created = 0
    for face in range(len(vectors)):
        row = ids[face]
        earlier = (row < face) & (row >= 0)
        earlier_neighbours = list(zip(row[earlier].tolist(), sims[face][earlier].tolist(), strict=True))
        decision = decide(face, earlier_neighbours, person_of, policy)
        if decision.waits:
            continue
        person = decision.person
        if person is None:
            person, created = created, created + 1
        for member in decision.members:
            person_of[member] = person
    for face, person in person_of.items():
        labels[face] = person
    return labels


def pairwise_scores(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Pairwise precision, recall and F1 of a clustering against true labels (-1 = unassigned:
    its pairs are never predicted together)."""
    predicted = np.asarray(predicted)
    truth = np.asarray(truth)
    same_truth = truth[:, None] == truth[None, :]
    same_pred = (predicted[:, None] == predicted[None, :]) & (predicted[:, None] >= 0)
    upper = np.triu(np.ones_like(same_truth, dtype=bool), k=1)
    true_pairs = int((same_truth & upper).sum())
    pred_pairs = int((same_pred & upper).sum())
    hits = int((same_truth & same_pred & upper).sum())
    precision = hits / pred_pairs if pred_pairs else 1.0
    recall = hits / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}
