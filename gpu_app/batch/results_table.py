"""The embed job's results table: one row per face, as parquet (schema in gpu_app/batch/README.md).

Written as checkpoint parts while a shard runs, as `results-<i>.parquet` when it ends; read back on
resume, and by `materialize`.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from gpu_app.batch import ConfigError


@dataclass(frozen=True, slots=True)
class FaceRow:
    image_key: str
    image_id: str
    face_id: str
    bbox: tuple[float, float, float, float]
    det_score: float
    embedding: np.ndarray  # float32 (dim,)
    model_pack: str


def results_schema(dim: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("image_key", pa.string(), nullable=False),
            pa.field("image_id", pa.string(), nullable=False),
            pa.field("face_id", pa.string(), nullable=False),
            pa.field("bbox", pa.list_(pa.float32(), 4), nullable=False),
            pa.field("det_score", pa.float32(), nullable=False),
            pa.field("embedding", pa.list_(pa.float32(), dim), nullable=False),
            pa.field("model_pack", pa.string(), nullable=False),
        ]
    )


def rows_to_parquet(rows: Sequence[FaceRow], dim: int) -> bytes:
    def fixed(values: np.ndarray, size: int) -> pa.Array:
        return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1), pa.float32()), size)

    bboxes = np.asarray([r.bbox for r in rows], dtype=np.float32).reshape(len(rows), 4)
    vectors = np.asarray([r.embedding for r in rows], dtype=np.float32).reshape(len(rows), dim)
    table = pa.Table.from_arrays(
        [
            pa.array([r.image_key for r in rows], pa.string()),
            pa.array([r.image_id for r in rows], pa.string()),
            pa.array([r.face_id for r in rows], pa.string()),
            fixed(bboxes, 4),
            pa.array(np.asarray([r.det_score for r in rows], dtype=np.float32)),
            fixed(vectors, dim),
            pa.array([r.model_pack for r in rows], pa.string()),
        ],
        schema=results_schema(dim),
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def parquet_to_rows(data: bytes, dim: int) -> list[FaceRow]:
    table = pq.read_table(io.BytesIO(data))
    if table.schema.field("embedding").type != pa.list_(pa.float32(), dim):
        raise ConfigError(
            f"existing results hold {table.schema.field('embedding').type} embeddings, this model "
            f"{dim}-d: write to another OUTPUT_PREFIX"
        )
    n = table.num_rows
    bboxes = table.column("bbox").combine_chunks().flatten().to_numpy().reshape(n, 4)
    vectors = table.column("embedding").combine_chunks().flatten().to_numpy().reshape(n, dim)
    columns = {name: table.column(name).to_pylist() for name in ("image_key", "image_id", "face_id")}
    scores = table.column("det_score").to_pylist()
    packs = table.column("model_pack").to_pylist()
    return [
        FaceRow(
            image_key=columns["image_key"][i],
            image_id=columns["image_id"][i],
            face_id=columns["face_id"][i],
            bbox=tuple(float(v) for v in bboxes[i]),  # type: ignore[arg-type]
            det_score=float(scores[i]),
            embedding=vectors[i].copy(),
            model_pack=packs[i],
        )
        for i in range(n)
    ]
