"""People operations over a vector index and a people store: what the API, CLI and Batch share.

Clustering holds one lock per process: two uploads clustering at once would otherwise each see
the other's faces as waiting and create two people for one group.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

from gpu_app.index import FaceRecord, SearchFilters, SearchHit, VectorIndex
from gpu_app.people.base import (
    Assignment,
    PeopleConflictError,
    PeopleStore,
    Person,
    PersonNotFoundError,
)
from gpu_app.people.clustering import ClusterPolicy, cluster_vectors, decide

if TYPE_CHECKING:
    from gpu_app.config import Settings

log = logging.getLogger(__name__)


class FaceUnknownError(LookupError):
    """No face with this id in the index."""


@dataclass(frozen=True, slots=True)
class ReclusterResult:
    collection: str
    faces: int
    people: int
    unassigned: int
    kept_names: int


def new_person_id() -> str:
    return uuid.uuid4().hex


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class PeopleDirectory:
    def __init__(
        self, index: VectorIndex, store: PeopleStore, policy: ClusterPolicy, model_pack: str
    ) -> None:
        self.index = index
        self.store = store
        self.policy = policy
        self.model_pack = model_pack
        self._lock = threading.RLock()

    # --- clustering ----------------------------------------------------------------------------
    def cluster_new(self, records: Sequence[FaceRecord]) -> dict[str, str]:
        """Place freshly indexed faces (in order); returns face -> person for those placed."""
        with self._lock:
            # Every face's neighbours in one batched search per collection: they are all in the
            # index already, and placing a face changes people, not the index.
            hits_of: dict[str, list[SearchHit]] = {}
            for collection in dict.fromkeys(record.collection for record in records):
                members = [record for record in records if record.collection == collection]
                found = self.index.search_many(
                    np.stack([np.asarray(record.embedding, dtype=np.float32) for record in members]),
                    self.policy.neighbours + 1,
                    self.policy.threshold,
                    SearchFilters(collection=collection, model_pack=self.model_pack),
                )
                hits_of.update((record.face_id, hits) for record, hits in zip(members, found, strict=True))
            # The assignments of these faces and of all their neighbours, read once; each decision
            # adds its own, so a later face of the request sees where an earlier one went.
            faces = [h.face_id for hits in hits_of.values() for h in hits] + [r.face_id for r in records]
            person_of = self.store.person_of(list(dict.fromkeys(faces)))
            assignments = [
                a for record in records for a in self._place(record, hits_of[record.face_id], person_of)
            ]
            # One write for the request (one transaction, one bulk request); its people exist already.
            self.store.assign(assignments)
        return {a.face_id: a.person_id for a in assignments}

    def _place(
        self, record: FaceRecord, hits: Sequence[SearchHit], person_of: dict[str, str]
    ) -> list[Assignment]:
        """The face's decision as assignments to make (creating its person if new), also entered in
        `person_of`; none when it waits or already has a person (a re-processed image keeps it)."""
        if record.face_id in person_of:
            return []
        neighbours = [(h.face_id, h.similarity) for h in hits if h.face_id != record.face_id]
        decision = decide(record.face_id, neighbours, person_of, self.policy)
        if decision.waits:
            return []
        person_id = decision.person
        if person_id is None:
            person_id = self.store.create(record.collection, _now(), new_person_id()).person_id
        scores = {h.face_id: h.det_score for h in hits} | {record.face_id: record.det_score}
        person_of.update(dict.fromkeys(decision.members, person_id))
        return [Assignment(face, person_id, record.collection, scores[face]) for face in decision.members]

    def recluster(self, collection: str, records: Iterable[FaceRecord]) -> ReclusterResult:
        """Cluster the collection's faces from scratch (in creation order). A new person that takes
        most of a former person's faces keeps that person's id, name and hidden flag."""
        chosen = sorted(
            (r for r in records if r.collection == collection and r.model_pack == self.model_pack),
            key=lambda r: (r.created_at, r.face_id),
        )
        vectors = (
            np.stack([np.asarray(r.embedding, dtype=np.float32) for r in chosen])
            if chosen
            else np.zeros((0, 1), dtype=np.float32)
        )
        labels = cluster_vectors(vectors, self.policy)
        with self._lock:
            former = self.store.person_of([r.face_id for r in chosen])
            former_people = {pid: self.store.get(pid) for pid in set(former.values())}
            groups: dict[int, list[FaceRecord]] = {}
            for record, label in zip(chosen, labels.tolist(), strict=True):
                if label >= 0:
                    groups.setdefault(label, []).append(record)
            self.store.clear(collection)
            taken: set[str] = set()
            kept = 0
            for members in groups.values():
                votes: dict[str, int] = {}
                for record in members:
                    if (old := former.get(record.face_id)) is not None and old not in taken:
                        votes[old] = votes.get(old, 0) + 1
                heir = max(votes, key=lambda pid: (votes[pid], pid)) if votes else None
                old_person = former_people.get(heir) if heir else None
                if old_person is not None:
                    taken.add(old_person.person_id)
                    kept += old_person.name is not None
                    person = self.store.create(
                        collection,
                        old_person.created_at,
                        old_person.person_id,
                        old_person.name,
                        old_person.hidden,
                    )
                else:
                    person = self.store.create(collection, _now(), new_person_id())
                self.store.assign(
                    [Assignment(r.face_id, person.person_id, collection, r.det_score) for r in members]
                )
        return ReclusterResult(
            collection=collection,
            faces=len(chosen),
            people=len(groups),
            unassigned=int((labels < 0).sum()),
            kept_names=kept,
        )

    # --- people --------------------------------------------------------------------------------
    def get(self, person_id: str) -> Person:
        person = self.store.get(person_id)
        if person is None:
            raise PersonNotFoundError(person_id)
        return person

    def merge(self, source_id: str, target_id: str) -> Person:
        """Move every face of `source_id` to `target_id` and delete `source_id`."""
        if source_id == target_id:
            raise PeopleConflictError(f"cannot merge person {source_id} into itself")
        with self._lock:
            source, target = self.get(source_id), self.get(target_id)
            if source.collection != target.collection:
                raise PeopleConflictError(
                    f"person {source_id} is in collection {source.collection!r}, {target_id} in "
                    f"{target.collection!r}: a person never mixes collections"
                )
            moved = self._all_faces(source_id)
            scores = self._scores(moved)
            self.store.assign([Assignment(f, target_id, target.collection, scores[f]) for f in moved])
            self.store.delete(source_id)
            return self.get(target_id)

    def move_face(self, face_id: str, person_id: str | None) -> Person:
        """Give a face to an existing person, or to a new one (person_id None)."""
        record = self.index.get(face_id)
        if record is None:
            raise FaceUnknownError(face_id)
        with self._lock:
            if person_id is None:
                person_id = self.store.create(record.collection, _now(), new_person_id()).person_id
            else:
                person = self.get(person_id)
                if person.collection != record.collection:
                    raise PeopleConflictError(
                        f"face {face_id} is in collection {record.collection!r}, person {person_id} in "
                        f"{person.collection!r}: a person never mixes collections"
                    )
            former = self.store.person_of([face_id]).get(face_id)
            self.store.assign([Assignment(face_id, person_id, record.collection, record.det_score)])
            if former is not None and former != person_id:
                self._drop_if_empty([former])
            return self.get(person_id)

    def delete(self, person_id: str) -> int:
        """Delete the person; its faces become unassigned (the faces and images stay)."""
        with self._lock:
            self.get(person_id)
            _, count = self.store.faces(person_id, 0, 1)
            self.store.delete(person_id)
            return count

    def forget_faces(self, face_ids: Sequence[str]) -> None:
        """Faces deleted from the index leave their people; an unnamed person left without faces goes."""
        if face_ids:
            with self._lock:
                people = set(self.store.person_of(face_ids).values())
                self.store.unassign(face_ids)
                self._drop_if_empty(people)

    def _drop_if_empty(self, person_ids: Iterable[str]) -> None:
        """A named person stays even without faces (the name is the user's work); others go."""
        for person_id in person_ids:
            person = self.store.get(person_id)
            if person is not None and person.face_count == 0 and person.name is None:
                self.store.delete(person_id)

    def people_of_faces(self, face_ids: Sequence[str]) -> dict[str, Person]:
        """The person of each assigned face among `face_ids` (for search hits)."""
        assigned = self.store.person_of(list(dict.fromkeys(face_ids)))
        people = {pid: self.store.get(pid) for pid in set(assigned.values())}
        return {face: person for face, pid in assigned.items() if (person := people[pid]) is not None}

    def centroid(self, person_id: str) -> np.ndarray:
        """The L2-normalised mean of the person's face vectors: a query that finds the person."""
        faces = self._all_faces(person_id)
        vectors = [r.embedding for f in faces if (r := self.index.get(f)) is not None]
        if not vectors:
            raise PeopleConflictError(f"person {person_id} has no faces to search with")
        mean = np.mean(np.stack(vectors), axis=0).astype(np.float32)
        return mean / max(float(np.linalg.norm(mean)), 1e-12)

    def _all_faces(self, person_id: str) -> list[str]:
        faces, total = self.store.faces(person_id, 0, 10_000)
        while len(faces) < total:
            more, _ = self.store.faces(person_id, len(faces), 10_000)
            if not more:
                break
            faces += more
        return faces

    def _scores(self, face_ids: Sequence[str]) -> dict[str, float]:
        scores = {}
        for face in face_ids:
            record = self.index.get(face)
            scores[face] = record.det_score if record is not None else 0.0
        return scores


def build_people(settings: Settings, index: VectorIndex, model_pack: str) -> PeopleDirectory:
    """The people directory beside the configured index, with the pack's clustering policy."""
    policy = ClusterPolicy(
        threshold=settings.effective_people_threshold,
        min_faces=settings.people_min_faces,
    )
    if index.backend == "elasticsearch":
        from gpu_app.people.elasticsearch import ElasticsearchPeopleStore

        return PeopleDirectory(index, ElasticsearchPeopleStore.beside(index), policy, model_pack)
    from gpu_app.people.embedded import PEOPLE_FILE, SqlitePeopleStore

    return PeopleDirectory(index, SqlitePeopleStore(settings.index_dir / PEOPLE_FILE), policy, model_pack)
