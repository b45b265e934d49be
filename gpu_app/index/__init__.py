"""Vector index backends. `build_index(settings)` builds the configured one (not yet opened)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gpu_app.index.base import (
    DEFAULT_COLLECTION,
    FaceRecord,
    IndexHealth,
    IndexMismatchError,
    IndexUnavailableError,
    IndexWriteError,
    SearchFilters,
    SearchHit,
    VectorIndex,
    VectorIndexError,
)

if TYPE_CHECKING:
    from gpu_app.config import Settings

__all__ = [
    "DEFAULT_COLLECTION",
    "FaceRecord",
    "IndexHealth",
    "IndexMismatchError",
    "IndexUnavailableError",
    "IndexWriteError",
    "SearchFilters",
    "SearchHit",
    "VectorIndex",
    "VectorIndexError",
    "build_index",
]


def build_index(settings: Settings, target: str | None = None) -> VectorIndex:
    """The index named by `target` (default: VECTOR_INDEX)."""
    backend = target or settings.vector_index
    if backend == "elasticsearch":
        from gpu_app.index.elasticsearch import ElasticsearchIndex

        return ElasticsearchIndex(settings)
    if backend == "embedded":
        from gpu_app.index.embedded import EmbeddedIndex

        return EmbeddedIndex(settings.index_dir)
    raise ValueError(f"unknown vector index {backend!r} (embedded | elasticsearch)")
