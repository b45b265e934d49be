"""Rebuild a vector index from the stored sidecars: no model and no GPU needed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from gpu_app.index import FaceRecord, VectorIndex
from gpu_app.sidecar import Sidecar
from gpu_app.storage import SIDECAR_SUFFIX, ImageStorage, StorageError


def iter_sidecars(storage: ImageStorage, prefix: str) -> Iterator[tuple[str, Sidecar | None, str | None]]:
    """Every sidecar under the prefix: (key, sidecar, None), or (key, None, reason) when unreadable."""
    for key in storage.list(f"{prefix}/" if prefix else ""):
        if not key.endswith(SIDECAR_SUFFIX):
            continue
        try:
            yield key, Sidecar.from_json(storage.get(key)), None
        except (ValueError, KeyError, TypeError, StorageError) as exc:
            yield key, None, f"unreadable sidecar: {exc}"


def reindex(
    storage: ImageStorage,
    prefix: str,
    target: VectorIndex,
    model_pack: str,
    *,
    chunk_size: int = 1000,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Add every face of `model_pack` found in sidecars to `target`, opening it on the first sidecar.

    Upserts by face id, so running it twice, or over a partly filled index, never duplicates.
    """
    stats: dict[str, Any] = {"images": 0, "faces": 0, "skipped_other_pack": 0, "errors": {}}
    batch: list[FaceRecord] = []
    opened = False

    def flush() -> None:
        if batch:
            target.add(batch)
            stats["faces"] += len(batch)
            batch.clear()

    for key, sidecar, error in iter_sidecars(storage, prefix):
        if progress:
            progress(1)
        if sidecar is None:
            stats["errors"][key] = error
            continue
        if sidecar.model_pack != model_pack:
            stats["skipped_other_pack"] += 1
            continue
        if not opened:
            target.open(sidecar.embedding_dim, model_pack)
            opened = True
        batch.extend(sidecar.records())
        stats["images"] += 1
        if len(batch) >= chunk_size:
            flush()
    flush()
    return stats
