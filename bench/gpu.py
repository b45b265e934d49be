"""Item 9: the pipeline on a GPU (CUDA), when onnxruntime-gpu sees one; otherwise said so.

With CUDA: the app's pipeline (gpu_app.runtime, EXECUTION_PROVIDER=cuda) and the bare model calls
(the floor, on CUDA too) alternate over the dataset's rounds, while nvidia-smi samples GPU
utilisation. Reported: images/s, faces/s, mean and peak utilisation, the overhead factor
(pipeline / floor), and minutes and dollars per 1,000 images at the g4dn.xlarge Spot price of
the design document (shared/origins/002_9a1a45f20c9ab81f.txt), against its targets: under 30
minutes per 1,000 images and under $0.01 per image.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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

CUDA = "CUDAExecutionProvider"
# The design document's price table (g4dn.xlarge: $0.526/h on demand, $0.158/h Spot) and targets.
SPOT_USD_PER_HOUR = {"g4dn.xlarge": 0.158, "g4dn.2xlarge": 0.226}
TARGET_MINUTES_PER_1000 = 30.0
TARGET_USD_PER_IMAGE = 0.01


def cost_per_1000(images_per_second: float, usd_per_hour: float) -> tuple[float, float]:
    """(minutes, dollars) of instance time to process 1,000 images at this throughput."""
    if images_per_second <= 0:
        return float("inf"), float("inf")
    hours = 1000.0 / images_per_second / 3600.0
    return hours * 60.0, hours * usd_per_hour


def parse_utilisation(output: str) -> list[float]:
    """Percentages from `nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits`."""
    values = []
    for line in output.splitlines():
        try:
            values.append(float(line.strip().split(",")[0]))
        except ValueError:
            continue
    return values


@contextmanager
def sampled_utilisation(interval: float = 0.2) -> Iterator[list[float]]:
    """Samples of GPU utilisation (%) while the block runs; empty without nvidia-smi."""
    samples: list[float] = []
    smi = shutil.which("nvidia-smi")
    stop = threading.Event()

    def sample() -> None:
        while smi and not stop.wait(interval):
            done = subprocess.run(
                [smi, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
                check=False,
            )
            samples.extend(parse_utilisation(done.stdout)[:1])

    thread = threading.Thread(target=sample, name="nvidia-smi", daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join(timeout=5)


def not_measured(providers: list[str]) -> SectionResult:
    return SectionResult(
        key="gpu",
        heading=HEADINGS["gpu"],
        notes=[
            f"Not measured on this machine: onnxruntime offers {', '.join(providers)}, no "
            f"{CUDA} (no GPU, or onnxruntime instead of onnxruntime-gpu). On a GPU instance "
            "`make bench` measures this section itself; nothing here is an estimate.",
            f"Targets it will be held to: under {TARGET_MINUTES_PER_1000:.0f} minutes per 1,000 images "
            f"and under ${TARGET_USD_PER_IMAGE} per image on g4dn.xlarge Spot "
            f"(${SPOT_USD_PER_HOUR['g4dn.xlarge']}/h in the design document): that is at least "
            f"{1000 / (TARGET_MINUTES_PER_1000 * 60):.2f} images/s.",
            "The CUDA path is covered on CPU by tests of provider selection (tests/gpu_app/test_engine.py) "
            "and of this section's arithmetic (tests/bench/test_gpu_section.py).",
        ],
        numbers={"gpu_measured": 0.0},
    )


def run(opts: Options) -> list[SectionResult]:
    import onnxruntime as ort

    providers = list(ort.get_available_providers())
    if CUDA not in providers:
        log(f"gpu: no {CUDA} among {providers}: section not measured")
        return [not_measured(providers)]
    return [measure(opts)]


def measure(opts: Options) -> SectionResult:
    import os

    from bench.models import Floor, decode_bgr
    from bench.pipeline import Pipeline, face_blob, floor_run, rounds_of, warm_up_images

    os.environ["EXECUTION_PROVIDER"] = "cuda"  # the app's settings read it: refuse a silent CPU fallback
    images = dataset.load(opts.quick)
    root, pack = model_pack()
    pipeline = Pipeline.start()
    try:
        settings = pipeline.runtime.settings
        floor = Floor.load(root, pack, settings.det_size, providers=[CUDA, "CPUExecutionProvider"])
        rec = face_blob(floor, images, settings.rec_batch_size)
        pipeline.run(warm_up_images(6))
        floor.run_rec(rec)
        slices = rounds_of(images, opts.quick)
        current: dict[str, Any] = {}
        faces: list[int] = []

        def pipeline_arm() -> float:
            start, end = current["slice"]
            with sampled_utilisation() as samples:
                began = time.perf_counter()
                found, _ = pipeline.run(images[start:end])
                seconds = time.perf_counter() - began
            faces.append(found)
            utilisation.extend(samples)
            return seconds

        def floor_arm() -> float:
            start, end = current["slice"]
            blobs = [floor.det_blob(decode_bgr(i.data)) for i in images[start:end]]
            return floor_run(floor, blobs, faces[-1], rec)

        utilisation: list[float] = []
        times = interleave(
            {"pipeline": pipeline_arm, "floor": floor_arm},
            len(slices),
            before_round=lambda n: current.update(slice=slices[n]),
        )
        applied = pipeline.service.engine.info.applied_providers
    finally:
        pipeline.close()
    seconds = sum(times["pipeline"])
    rate, face_rate = len(images) / seconds, sum(faces) / seconds
    rows = []
    for instance, price in SPOT_USD_PER_HOUR.items():
        minutes, dollars = cost_per_1000(rate, price)
        rows.append(
            [
                instance,
                f"${price}/h",
                fmt(minutes, 2),
                f"${dollars:.4f}",
                f"${dollars / 1000:.6f}",
                "met"
                if minutes < TARGET_MINUTES_PER_1000 and dollars / 1000 < TARGET_USD_PER_IMAGE
                else "NOT met",
            ]
        )
    return SectionResult(
        key="gpu",
        heading=HEADINGS["gpu"],
        ratios=[
            Ratio(
                "GPU pipeline / model floor (overhead factor)",
                per_round(times["pipeline"], times["floor"]),
                "pipeline time / its model calls alone on the GPU; 1 = no overhead",
            )
        ],
        tables=[
            Table(
                "GPU throughput (sum over rounds)",
                ["images/s", "faces/s", "GPU util mean %", "GPU util max %", "providers"],
                [
                    [
                        fmt(rate),
                        fmt(face_rate),
                        fmt(statistics.fmean(utilisation), 0) if utilisation else "n/a",
                        fmt(max(utilisation), 0) if utilisation else "n/a",
                        str(applied),
                    ]
                ],
            ),
            Table(
                "Cost per 1,000 images (Spot, design-document prices)",
                ["instance", "Spot price", "minutes / 1,000", "$ / 1,000", "$ / image", "targets"],
                rows,
            ),
        ],
        notes=[f"Images: {dataset.describe(images)}; utilisation sampled by nvidia-smi every 0.2 s."],
        numbers={"gpu_measured": 1.0, "gpu_images_per_s": rate, "gpu_faces_per_s": face_rate},
    )
