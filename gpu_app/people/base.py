"""What a people store keeps: persons (per collection) and which face belongs to which person.

Faces themselves stay in the vector index; a store only maps face ids to person ids, so moving a
face never rewrites its vector. Implementations: `embedded.SqlitePeopleStore`,
`elasticsearch.ElasticsearchPeopleStore`; both pass tests/gpu_app/test_people_store_contract.py.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


class PeopleError(Exception):
    """Base class of people errors."""


class PersonNotFoundError(PeopleError, LookupError):
    pass


class PeopleConflictError(PeopleError):
    """The request contradicts the stored people (merge into itself, across collections)."""


@dataclass(frozen=True, slots=True)
class Person:
    person_id: str
    collection: str
    name: str | None
    hidden: bool
    face_count: int
    representative_face_id: str | None  # the assigned face with the best detection score
    created_at: str


@dataclass(frozen=True, slots=True)
class Assignment:
    """A face's place in the store: its person and the detection score that ranks representatives."""

    face_id: str
    person_id: str
    collection: str
    det_score: float


@runtime_checkable
class PeopleStore(Protocol):
    backend: str

    def open(self) -> None: ...

    def close(self) -> None: ...

    def person_of(self, face_ids: Sequence[str]) -> dict[str, str]:
        """Person id of each assigned face among `face_ids` (unassigned faces are absent)."""

    def create(
        self, collection: str, created_at: str, person_id: str, name: str | None = None, hidden: bool = False
    ) -> Person: ...

    def assign(self, assignments: Sequence[Assignment]) -> None:
        """Upsert face -> person (a face belongs to at most one person)."""

    def unassign(self, face_ids: Sequence[str]) -> int: ...

    def get(self, person_id: str) -> Person | None: ...

    def list(
        self, collection: str | None, offset: int, limit: int, include_hidden: bool
    ) -> tuple[list[Person], int]:
        """People by face count (most first), then creation; and how many there are in all."""

    def faces(self, person_id: str, offset: int, limit: int) -> tuple[builtins.list[str], int]:
        """Face ids of the person (best detection first) and their total."""

    def update(self, person_id: str, *, name: str | None, set_name: bool, hidden: bool | None) -> Person: ...

    def delete(self, person_id: str) -> None:
        """Remove the person; its faces become unassigned."""

    def clear(self, collection: str) -> None:
        """Remove every person of the collection (a full re-cluster starts from here)."""
