"""The vector index protocol: what the service needs from any face-vector store.

Implementations: `embedded.EmbeddedIndex` (SQLite + FAISS, the local default) and
`elasticsearch.ElasticsearchIndex` (production). Both pass `tests/gpu_app/test_index_contract.py`.

Vectors are L2-normalised float32, so cosine similarity equals the inner product; every
similarity crossing this interface is a cosine in [-1, 1], whatever the backend scores internally.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

DEFAULT_COLLECTION = "default"


class VectorIndexError(Exception):
    """Base class of vector index errors."""


class IndexMismatchError(VectorIndexError):
    """The index was built for another model pack or embedding dimension: refuse to mix vectors."""


class IndexUnavailableError(VectorIndexError):
    """The backend cannot be reached (after retries); the caller keeps the sidecar and retries later."""


class IndexWriteError(VectorIndexError):
    """Some records were not written. `failures` maps face_id to the backend's reason."""

    def __init__(self, failures: dict[str, str]) -> None:
        self.failures = failures
        sample = "; ".join(f"{k}: {v}" for k, v in list(failures.items())[:3])
        super().__init__(f"{len(failures)} face vector(s) not written ({sample})")


@dataclass(frozen=True, slots=True)
class FaceRecord:
    """One face as stored in the index."""

    face_id: str
    image_id: str
    storage_key: str
    model_pack: str
    det_score: float
    bbox: tuple[float, float, float, float]
    embedding: np.ndarray  # float32, shape (dim,), L2-normalised
    collection: str = DEFAULT_COLLECTION
    created_at: str = ""  # ISO 8601 UTC


@dataclass(frozen=True, slots=True)
class SearchFilters:
    collection: str | None = None
    image_id: str | None = None
    model_pack: str | None = None


@dataclass(frozen=True, slots=True)
class SearchHit:
    face_id: str
    image_id: str
    storage_key: str
    collection: str
    det_score: float
    bbox: tuple[float, float, float, float]
    similarity: float  # cosine similarity in [-1, 1]


@dataclass(frozen=True, slots=True)
class IndexHealth:
    ok: bool
    backend: str
    count: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def check_record(record: FaceRecord, dim: int, model_pack: str, index_label: str) -> None:
    """Refuse a vector of another model pack or dimension: mixed vectors make every search wrong."""
    if record.model_pack != model_pack:
        raise IndexMismatchError(
            f"face {record.face_id} is from model pack {record.model_pack!r}; {index_label} holds "
            f"{model_pack!r} vectors only"
        )
    if np.shape(record.embedding) != (dim,):
        raise IndexMismatchError(
            f"face {record.face_id} has shape {np.shape(record.embedding)}, not ({dim},)"
        )


@runtime_checkable
class VectorIndex(Protocol):
    backend: str

    def open(self, embedding_dim: int, model_pack: str) -> None:
        """Create the index if missing (idempotent, race-safe) or verify it.

        Raises IndexMismatchError when it exists for another dimension or model pack.
        """

    def add(self, records: Sequence[FaceRecord]) -> None:
        """Upsert by face_id. Raises IndexWriteError naming every record not written."""

    def search(
        self,
        query: np.ndarray,
        k: int,
        threshold: float,
        filters: SearchFilters | None = None,
    ) -> list[SearchHit]:
        """Top-k faces with cosine similarity >= threshold, best first."""

    def search_many(
        self,
        queries: np.ndarray,
        k: int,
        threshold: float,
        filters: SearchFilters | None = None,
    ) -> list[list[SearchHit]]:
        """`search` of each row of `queries` in one call (one FAISS call, one _msearch): placing a
        request's faces into people asks for all of them at once."""

    def get(self, face_id: str) -> FaceRecord | None: ...

    def delete_image(self, image_id: str) -> int:
        """Remove every face of the image; returns how many were removed."""

    def count(self, filters: SearchFilters | None = None) -> int: ...

    def health(self) -> IndexHealth: ...

    def close(self) -> None: ...
