"""Where a re-cluster reads a collection's faces: the index when it can list them, else the sidecars."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from gpu_app.index import FaceRecord
from gpu_app.reindex import iter_sidecars

if TYPE_CHECKING:
    from gpu_app.service import FaceService


def collection_records(service: FaceService, collection: str) -> Iterator[FaceRecord]:
    """Every face of the collection (of the service's model pack)."""
    iter_records = getattr(service.index, "iter_records", None)
    if iter_records is not None:  # the embedded index lists its rows
        for batch in iter_records():
            yield from (r for r in batch if r.collection == collection)
        return
    # Elasticsearch: the sidecars are the durable record of every face and its exact vector.
    for _, sidecar, _ in iter_sidecars(service.storage, service.prefix):
        if (
            sidecar is not None
            and sidecar.collection == collection
            and sidecar.model_pack == service.model_pack
        ):
            yield from sidecar.records()
