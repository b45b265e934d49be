"""Item 3: recognition cost per face at batch sizes 1, 8, 16, 32 (and 64, the engine's default).

The same real aligned faces go through the recognition session in chunks of each batch size;
rounds interleave the batch sizes (b1 b8 b16 b32 b64, b1 b8 ...). Two variants per size:
- model: `session.run` on a blob built beforehand (the model alone);
- get_feat: insightface's `ArcFaceONNX.get_feat`, which builds the blob from the crops first.
The ratio is ms/face at batch b over ms/face at batch 1 in the same round.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bench import dataset
from bench.core import (
    HEADINGS,
    Options,
    Ratio,
    SectionResult,
    Table,
    fmt,
    interleave,
    log,
    model_pack,
    per_round,
)
from bench.models import Floor, decode_bgr

BATCH_SIZES = (1, 8, 16, 32, 64)


def aligned_faces(floor: Floor, count: int) -> list[np.ndarray]:
    """`count` aligned 112x112 crops of real faces from the image set (cycled when fewer)."""
    crops: list[np.ndarray] = []
    for image in dataset.load(True):
        bgr = decode_bgr(image.data)
        _, landmarks = floor.faces(bgr)
        crops.extend(floor.align(bgr, points) for points in landmarks)
        if len(crops) >= count:
            break
    return [crops[i % len(crops)] for i in range(count)]


def run(opts: Options) -> list[SectionResult]:
    root, pack = model_pack()
    floor = Floor.load(root, pack)
    faces = opts.pick(384, 64)  # divisible by every batch size: equal work per arm
    rounds = opts.pick(5, 2)
    crops = aligned_faces(floor, faces)
    blob = floor.rec_blob(crops)
    for size in BATCH_SIZES:  # warm-up: the first call at each shape plans memory for it
        floor.run_rec(blob[:size])
        floor.get_feat(crops[:size])

    def model_arm(size: int) -> Callable[[], float]:
        def arm() -> float:
            import time

            started = time.perf_counter()
            for start in range(0, faces, size):
                floor.run_rec(blob[start : start + size])
            return time.perf_counter() - started

        return arm

    def get_feat_arm(size: int) -> Callable[[], float]:
        def arm() -> float:
            import time

            started = time.perf_counter()
            for start in range(0, faces, size):
                floor.get_feat(crops[start : start + size])
            return time.perf_counter() - started

        return arm

    arms: dict[str, Callable[[], float]] = {}
    for size in BATCH_SIZES:
        arms[f"model b{size}"] = model_arm(size)
        arms[f"get_feat b{size}"] = get_feat_arm(size)
    log(f"recognition: {faces} faces x {len(BATCH_SIZES)} batch sizes x 2 variants x {rounds} rounds")
    times = interleave(arms, rounds)

    def per_face_ms(name: str) -> float:
        return 1000 * float(np.median(times[name])) / faces

    rows = []
    for size in BATCH_SIZES:
        model, feat = per_face_ms(f"model b{size}"), per_face_ms(f"get_feat b{size}")
        rows.append(
            [
                str(size),
                fmt(model, 3),
                fmt(feat, 3),
                fmt(1000 / model, 0),
                fmt(model / per_face_ms("model b1"), 2),
            ]
        )
    ratios = [
        Ratio(
            f"recognition ms/face, batch {size} vs batch 1",
            per_round(times[f"model b{size}"], times["model b1"]),
            "per-face model time at this batch / at batch 1; < 1 means batching pays",
            headline=size <= 32,
        )
        for size in BATCH_SIZES[1:]
    ]
    ratios.append(
        Ratio(
            "recognition get_feat / session.run, batch 32",
            per_round(times["get_feat b32"], times["model b32"]),
            "blob building + model / model alone; the preprocessing share",
            headline=False,
        )
    )
    best = min(BATCH_SIZES, key=lambda s: per_face_ms(f"model b{s}"))
    return [
        SectionResult(
            key="batching",
            heading=HEADINGS["batching"],
            ratios=ratios,
            tables=[
                Table(
                    f"Recognition, {faces} real aligned faces, median of {rounds} rounds",
                    ["batch", "model ms/face", "get_feat ms/face", "faces/s (model)", "vs batch 1"],
                    rows,
                )
            ],
            notes=[
                "Session built like the engine's (intra-op threads = cores, inter-op 1); same faces "
                "for every batch size; warm-up call per shape excluded.",
                f"Cheapest per face in this run: batch {best}.",
            ],
            numbers={f"ms_per_face_b{s}": per_face_ms(f"model b{s}") for s in BATCH_SIZES},
        )
    ]
