"""Items 1 and 2: face pipeline throughput against the naive baseline and against the model floor.

Arms, all on the same images and the same model pack, interleaved per round (naive, pipeline,
[pipeline@ref], floor). Each round is a slice of the image set holding whole cycles of the
dataset's kind pattern, so every round sees the same mix and each arm processes the set once.

- naive: the seed's loop, `FaceAnalysis.get(cv2.imdecode(bytes))` per image (one recognition
  call per face). Includes decode, detection, alignment, recognition. No storage, no index.
- pipeline: `FaceService.process_uploads` of the service the app's Runtime builds, in requests of
  PIPELINE_CHUNK images, as the CLI and HTTP clients call it. Includes decode (gpu_app.imaging),
  detection, alignment, recognition as the engine batches it, image + JSON sidecar written to
  local disk, SQLite + FAISS index upsert.
- floor: onnxruntime `session.run` only: one detection call per image on blobs letterboxed
  beforehand, and recognition calls on pre-aligned face blobs for the faces the pipeline found in
  that round, in batches of the engine's `rec_batch_size`. No decode, resize, NMS, alignment,
  normalisation, storage or index.
"""

from __future__ import annotations

import contextlib
import cProfile
import io
import json
import os
import pstats
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench import dataset
from bench.core import (
    BUILD,
    HEADINGS,
    REPO,
    TIMES,
    Options,
    Ratio,
    SectionResult,
    Table,
    fmt,
    interleave,
    log,
    model_pack,
    ms,
    per_round,
    timed,
    usable_cores,
)
from bench.dataset import BenchImage
from bench.models import Floor, decode_bgr, load_naive, naive_get

PIPELINE_CHUNK = 16  # images per process_uploads call: the CLI's default --batch
WARMUP_IMAGES = 6
REF_PREFIX = "BENCH-REF "


# --- the project's pipeline (also used by the --ref worker, against the other gpu_app) ----------------
def settings_for(state: Path) -> Any:
    from gpu_app.config import Settings

    root, pack = model_pack()
    return Settings(
        model_root=str(root),
        model_pack=pack,
        local_storage_dir=state / "images",
        index_dir=state / "index",
        job_spool_dir=state / "spool",
    )


@dataclass
class Pipeline:
    """The service as the app builds it (gpu_app.runtime.Runtime: engine wrappers, storage, index)
    over a scratch state directory; it lives across rounds like a running server."""

    runtime: Any
    state: tempfile.TemporaryDirectory[str]

    @classmethod
    def start(cls) -> Pipeline:
        from gpu_app.runtime import Runtime

        BUILD.mkdir(parents=True, exist_ok=True)
        state = tempfile.TemporaryDirectory(prefix="pipeline-", dir=BUILD)
        runtime = Runtime(settings_for(Path(state.name)))
        runtime.start(background=False)
        if runtime.service is None:
            state.cleanup()
            raise RuntimeError(f"the app runtime did not start: {runtime.error}")
        return cls(runtime, state)

    @property
    def service(self) -> Any:
        return self.runtime.service

    def run(self, images: Sequence[BenchImage]) -> tuple[int, int]:
        """Process the images in requests of PIPELINE_CHUNK; returns (faces, failed images)."""
        faces = errors = 0
        for start in range(0, len(images), PIPELINE_CHUNK):
            chunk = images[start : start + PIPELINE_CHUNK]
            for outcome in self.service.process_uploads([(i.name, i.data) for i in chunk]):
                faces += len(outcome.faces)
                errors += outcome.error is not None
        return faces, errors

    def close(self) -> None:
        self.runtime.stop()
        self.state.cleanup()


class RefPipeline:
    """The same pipeline at another commit, in its own interpreter (two gpu_app cannot share one)."""

    def __init__(self, ref_dir: Path, quick: bool) -> None:
        env = os.environ | {"PYTHONPATH": str(REPO)}
        command = [sys.executable, "-m", "bench.pipeline", "--ref-worker"] + (["--quick"] if quick else [])
        # cwd first on sys.path: `gpu_app` resolves to the snapshot, `bench` to this checkout.
        self.proc = subprocess.Popen(
            command, cwd=ref_dir, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.ask("ping")

    def ask(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        for line in self.proc.stdout:
            if line.startswith(REF_PREFIX):
                return dict(json.loads(line[len(REF_PREFIX) :]))
        raise RuntimeError(f"ref worker exited ({self.proc.wait()}) while answering {command!r}")

    def close(self) -> None:
        try:
            self.ask("quit")
        finally:
            self.proc.wait(timeout=60)


def ref_worker(quick: bool) -> int:
    """Serve `run START END` requests on stdin with this interpreter's gpu_app (see RefPipeline)."""
    import gpu_app

    images = dataset.load(quick)
    pipeline = Pipeline.start()
    log(f"ref worker: gpu_app from {Path(gpu_app.__file__).parent}")
    try:
        for line in sys.stdin:
            command, *args = line.split()
            if command == "quit":
                print(REF_PREFIX + "{}", flush=True)
                return 0
            answer: dict[str, Any] = {}
            if command == "warmup":
                pipeline.run(warm_up_images(int(args[0])))
            elif command == "breakdown":
                answer = breakdown_pass(pipeline, breakdown_images())
            elif command == "run":
                start, end = int(args[0]), int(args[1])
                seconds, (faces, errors) = timed(lambda: pipeline.run(images[start:end]))  # noqa: B023
                answer = {"seconds": seconds, "faces": faces, "errors": errors}
            print(REF_PREFIX + json.dumps(answer), flush=True)
    finally:
        pipeline.close()
    return 0


def warm_up_images(count: int) -> list[BenchImage]:
    """The first images with a tag appended: new content ids, so the measured ones stay new."""
    return [image.tagged("warm-up") for image in dataset.load(True)[:count]]


# --- the floor ----------------------------------------------------------------------------------------
def face_blob(floor: Floor, images: Sequence[BenchImage], size: int) -> np.ndarray:
    """`size` real aligned faces from the set, as one recognition blob (cycled if there are fewer)."""
    crops: list[np.ndarray] = []
    for image in images:
        bgr = decode_bgr(image.data)
        _, landmarks = floor.faces(bgr)
        crops.extend(floor.align(bgr, points) for points in landmarks)
        if len(crops) >= size:
            break
    if not crops:
        raise RuntimeError("no face found in the benchmark images: is the model pack right?")
    return floor.rec_blob([crops[i % len(crops)] for i in range(size)])


def floor_run(floor: Floor, det_blobs: Sequence[np.ndarray], faces: int, rec: np.ndarray) -> float:
    """Seconds of the bare model calls: one detection per image, recognition in batches of len(rec)."""

    def detect_each() -> None:
        for blob in det_blobs:
            floor.run_det(blob)

    seconds, _ = timed(detect_each)
    batch = len(rec)
    for start in range(0, faces, batch):
        chunk = rec[: min(batch, faces - start)]
        seconds += timed(lambda: floor.run_rec(chunk))[0]  # noqa: B023
    return seconds


# --- stage breakdown and profile (context for where the time goes) --------------------------------------
# Stages of the breakdown, in order; each is wall time inside the call, summed over every thread
# (decode workers and the inference worker run at once, so stages overlap and may sum above the total).
ENGINE = "engine.analyze (inference worker): detect + align + recognise"
DETECT = "  detect: letterbox + detector session.run + decoding boxes, NMS"
DETECT_RUN = "    of which: detector session.run"
ALIGN = "  align (similarity transform + warpAffine)"
RECOGNISE = "  recognise: blob + recognizer session.run"
RECOGNISE_RUN = "    of which: recognizer session.run"
STAGES = (
    "decode (decode workers)",
    ENGINE,
    DETECT,
    DETECT_RUN,
    ALIGN,
    RECOGNISE,
    RECOGNISE_RUN,
    "face thumbnails (tiles + JPEG strip + put)",
    "sidecar JSON (Sidecar.to_json)",
    "storage.put (image, sidecar, thumbnails)",
    "index.add",
    "people placement (cluster_people)",
)


@contextmanager
def stage_timers(service: Any) -> Iterator[tuple[dict[str, float], dict[str, float]]]:
    """Seconds spent inside the service's stages during a real pass (wrappers on the live objects),
    on whichever thread runs them: wall time, and that thread's CPU time (session.run's own pool
    threads are not in the latter; the process CPU rows of the breakdown count them).

    Only what exists is wrapped: after a refactor a renamed stage drops out of the table instead
    of breaking the run. Nested stages are counted in their parent too.
    """
    import onnxruntime

    from gpu_app import service as service_module
    from gpu_app import sidecar

    spent: dict[str, float] = {}
    cpu: dict[str, float] = {}
    lock = threading.Lock()
    undo: list[Callable[[], None]] = []

    def add(label: str, seconds: float, cpu_seconds: float) -> None:
        with lock:
            spent[label] = spent.get(label, 0.0) + seconds
            cpu[label] = cpu.get(label, 0.0) + cpu_seconds

    def wrap(owner: Any, name: str, label: str | Callable[..., str]) -> None:
        original = getattr(owner, name, None)
        if original is None:
            return

        def timed_call(*args: Any, **kwargs: Any) -> Any:
            started, cpu_started = time.perf_counter(), time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                seconds, cpu_seconds = time.perf_counter() - started, time.thread_time() - cpu_started
                add(label(*args) if callable(label) else label, seconds, cpu_seconds)

        own = name in getattr(owner, "__dict__", {})  # else an instance attribute now shadows it

        def restore() -> None:
            if own:
                setattr(owner, name, original)
            else:
                delattr(owner, name)

        try:
            setattr(owner, name, timed_call)
        except (AttributeError, TypeError):
            return
        undo.append(restore)

    def session_label(session: Any, outputs: Any, feed: dict[str, Any], *rest: Any) -> str:
        # Recognition takes aligned 112-ish crops, detection the det_size letterbox.
        side = next(iter(feed.values())).shape[-1]
        return RECOGNISE_RUN if side <= 128 else DETECT_RUN

    inner = service.engine.inner
    wrap(service, "decode", STAGES[0])
    wrap(inner, "analyze_each", ENGINE)
    wrap(inner, "detect", DETECT)
    wrap(inner, "align", ALIGN)
    wrap(inner, "embed_crops", RECOGNISE)
    wrap(onnxruntime.InferenceSession, "run", session_label)
    for name in ("thumbnail_strip", "store_thumbnails"):  # as the service calls them
        wrap(service_module, name, STAGES[7])
    wrap(sidecar.Sidecar, "to_json", STAGES[8])
    wrap(service.storage, "put", STAGES[9])
    wrap(service.index, "add", STAGES[10])
    wrap(service, "cluster_people", STAGES[11])
    try:
        yield spent, cpu
    finally:
        for restore in reversed(undo):
            restore()


TOTAL = "pipeline: process_uploads (wall, total)"


def threads_cpu() -> dict[int, float]:
    """Seconds of CPU each thread of this process has run so far (the scheduler's count); empty
    where /proc has no per-thread schedstat."""
    spent: dict[int, float] = {}
    for task in Path("/proc/self/task").glob("*"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            spent[int(task.name)] = int((task / "schedstat").read_text().split()[0]) / 1e9
    return spent


def breakdown_pass(pipeline: Pipeline, images: Sequence[BenchImage]) -> dict[str, Any]:
    """One pass with the stages timed inside it: seconds per stage (wall and the thread's CPU), the
    total, the CPU time of the whole process (every thread), the model calls' share of it and the
    faces. The model calls' CPU is the calling threads' inside session.run plus every thread that
    Python did not start (onnxruntime's intra-op pools) over the pass."""
    with stage_timers(pipeline.service) as (spent, cpu):
        before, cpu_started = threads_cpu(), time.process_time()
        total, (faces, _) = timed(lambda: pipeline.run(images))
        process_cpu, after = time.process_time() - cpu_started, threads_cpu()
    python_threads = {thread.native_id for thread in threading.enumerate()}
    pools = sum(used - before.get(tid, 0.0) for tid, used in after.items() if tid not in python_threads)
    stages = {TOTAL: total, **{name: spent[name] for name in STAGES if name in spent}}
    thread_cpu = {TOTAL: process_cpu, **{name: cpu[name] for name in STAGES if name in cpu}}
    if after:
        thread_cpu[CPU_MODEL] = pools + sum(cpu.get(name, 0.0) for name in (DETECT_RUN, RECOGNISE_RUN))
    return {"stages": stages, "cpu": thread_cpu, "faces": faces}


CPU_TOTAL = "CPU time of the pass, every thread (process)"
CPU_MODEL = "  of which model calls (session.run's calling threads + onnxruntime's pool threads)"
CPU_REST = "  of which everything else (decode, pre/post-processing, thumbnails, writes, index, people)"
LIMIT = "CPU-bound limit: process CPU / {cores} cores / floor (the best overhead factor any overlap reaches)"


def breakdown_images() -> list[BenchImage]:
    """One cycle of kinds, tagged: new images for a service that has seen the set."""
    return [image.tagged("breakdown") for image in dataset.load(True)[: len(dataset.PATTERN)]]


def stage_breakdown(
    pipeline: Pipeline, floor: Floor, rec: np.ndarray, ref: RefPipeline | None, ref_label: str
) -> tuple[Table, dict[str, float]]:
    """The stages of one pass now (and at the ref commit, same images), then the floor, the CPU
    time of the pass and the CPU-bound limit it implies (context); also that limit as a number."""
    images = breakdown_images()
    now = breakdown_pass(pipeline, images)
    before = ref.ask("breakdown") if ref else None
    blobs = [floor.det_blob(decode_bgr(i.data)) for i in images]
    floor_seconds = floor_run(floor, blobs, now["faces"], rec)
    names = [TOTAL, *STAGES]
    n = len(images)
    cores = usable_cores()

    def cells(result: dict[str, Any] | None, name: str) -> list[str]:
        if result is None:
            return []
        stages, cpu = result["stages"], result.get("cpu", {})
        if name not in stages:
            return ["", "", ""]
        cpu_cell = ms(cpu[name] / n) if name in cpu else ""
        return [ms(stages[name] / n), cpu_cell, f"{100 * stages[name] / stages[TOTAL]:.0f}%"]

    def limit_of(result: dict[str, Any] | None) -> float | None:
        cpu = (result or {}).get("cpu", {})
        return cpu[TOTAL] / cores / floor_seconds if TOTAL in cpu else None

    measured = set(now["stages"]) | set(before["stages"] if before else ())
    rows = [[name, *cells(now, name), *cells(before, name)] for name in names if name in measured]
    rows[0][2] = ""  # the total's CPU is the process's, in its own row below
    if before:
        rows[0][5] = ""
    blank = ["", "", ""] if before else []
    floor_share = f"{100 * floor_seconds / now['stages'][TOTAL]:.0f}%"
    rows.append(["model floor, same images (separate pass)", ms(floor_seconds / n), "", floor_share, *blank])
    process_cpu = now["cpu"][TOTAL]

    def later_cells(seconds: float | None) -> list[str]:  # the ref's CPU column, when there is one
        return ["", ms(seconds / n) if seconds is not None else "", ""] if before else []

    before_cpu = (before or {}).get("cpu", {})
    rows.append([CPU_TOTAL, "", ms(process_cpu / n), "", *later_cells(before_cpu.get(TOTAL))])
    model_cpu = now["cpu"].get(CPU_MODEL)
    if model_cpu is not None:
        before_model = before_cpu.get(CPU_MODEL)
        before_rest = before_cpu[TOTAL] - before_model if before_model is not None else None
        rows.append([CPU_MODEL, "", ms(model_cpu / n), "", *later_cells(before_model)])
        rows.append([CPU_REST, "", ms((process_cpu - model_cpu) / n), "", *later_cells(before_rest)])
    limit, limit_before = limit_of(now), limit_of(before)
    assert limit is not None
    limit_cells = ["", f"{limit:.2f}{TIMES}", ""]
    if before:
        limit_cells += ["", f"{limit_before:.2f}{TIMES}" if limit_before is not None else "", ""]
    rows.append([LIMIT.format(cores=cores), *limit_cells])
    columns = ["stage", "ms / image", "CPU ms / image", "share of wall"]
    if before:
        columns += [f"ms / image @{ref_label}", f"CPU ms @{ref_label}", f"share @{ref_label}"]
    table = Table(
        f"Stage breakdown, one pass over {n} images / {now['faces']} faces, thread time summed over "
        "threads (single run: context only)",
        columns,
        rows,
    )
    return table, {"cpu_bound_limit": limit, "pipeline_cpu_ms_per_image": 1000 * process_cpu / n}


def profile(pipeline: Pipeline, images: Sequence[BenchImage]) -> Path:
    """cProfile of one pass, of the calling thread only: what the ingest and inference workers do
    shows up as waiting (the stage breakdown times them); what is left is index and people."""
    profiler = cProfile.Profile()
    profiler.runcall(pipeline.run, images)
    BUILD.mkdir(parents=True, exist_ok=True)
    profiler.dump_stats(BUILD / "pipeline.prof")
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(25)
    path = BUILD / "pipeline-profile.txt"
    path.write_text(out.getvalue())
    return path


# --- the section ----------------------------------------------------------------------------------------
def rounds_of(images: list[BenchImage], quick: bool) -> list[tuple[int, int]]:
    """Slices of whole pattern cycles: full 5 x 40 images, quick 2 x 20."""
    size = len(dataset.PATTERN) * (1 if quick else 2)
    return [(start, min(start + size, len(images))) for start in range(0, len(images), size)]


def run(opts: Options) -> list[SectionResult]:
    images = dataset.load(opts.quick)
    root, pack = model_pack()
    log(f"loading {pack} from {root}: naive FaceAnalysis, the engine, the floor sessions")
    naive = load_naive(root, pack)
    pipeline = Pipeline.start()
    ref: RefPipeline | None = None
    try:
        settings = pipeline.runtime.settings
        floor = Floor.load(root, pack, settings.det_size)
        rec_batch = settings.rec_batch_size
        ref = RefPipeline(opts.ref_dir, opts.quick) if opts.ref_dir else None
        # Warm-up (sessions, allocators; not timed), on copies that are not measured images.
        warm = warm_up_images(opts.pick(WARMUP_IMAGES, 3))
        for image in warm:
            naive_get(naive, image.data)
        pipeline.run(warm)
        rec = face_blob(floor, images, rec_batch)
        for blob in [floor.det_blob(decode_bgr(i.data)) for i in warm]:
            floor.run_det(blob)
        floor.run_rec(rec)
        if ref:
            ref.ask(f"warmup {len(warm)}")

        slices = rounds_of(images, opts.quick)
        current: dict[str, Any] = {}
        faces: dict[str, list[int]] = {"naive": [], "pipeline": [], "ref": []}
        errors: list[int] = []

        def naive_arm() -> float:
            start, end = current["slice"]
            seconds, found = timed(lambda: sum(naive_get(naive, i.data) for i in images[start:end]))
            faces["naive"].append(found)
            return seconds

        def pipeline_arm() -> float:
            start, end = current["slice"]
            seconds, (found, failed) = timed(lambda: pipeline.run(images[start:end]))
            faces["pipeline"].append(found)
            errors.append(failed)
            return seconds

        def ref_arm() -> float:
            assert ref is not None
            answer = ref.ask("run {} {}".format(*current["slice"]))
            faces["ref"].append(int(answer["faces"]))
            return float(answer["seconds"])

        def floor_arm() -> float:
            start, end = current["slice"]
            # Letterboxed blobs for this round's images, built before the clock starts.
            blobs = [floor.det_blob(decode_bgr(i.data)) for i in images[start:end]]
            return floor_run(floor, blobs, faces["pipeline"][-1], rec)

        arms = {"naive": naive_arm, "pipeline": pipeline_arm}
        if ref:
            arms["ref"] = ref_arm
        arms["floor"] = floor_arm  # last: it replays the faces the pipeline found this round

        def select(round_no: int) -> None:
            current["slice"] = slices[round_no]
            log(f"round {round_no + 1}: images {slices[round_no][0]}..{slices[round_no][1] - 1}")

        times = interleave(arms, len(slices), before_round=select)
        # Context only (one cycle of kinds, single run): full mode, or when profiling.
        wanted = not opts.quick or opts.profile
        breakdown, breakdown_numbers = (
            stage_breakdown(pipeline, floor, rec, ref, opts.ref_label) if wanted else (None, {})
        )
        fresh = [image.tagged("profile") for image in breakdown_images()]
        profile_path = profile(pipeline, fresh) if opts.profile else None
    finally:
        if ref:
            ref.close()
        pipeline.close()

    n_images = len(images)
    total = {name: sum(values) for name, values in times.items()}
    n_faces = sum(faces["pipeline"])
    includes = {
        "naive": "cv2 decode, detect, align + 1 recognition call per face",
        "pipeline": f"decode, detect, align, recognition as the engine batches it, store image + "
        f"sidecar, index; {PIPELINE_CHUNK} images per call",
        "ref": f"the same pipeline at {opts.ref_label}",
        "floor": f"session.run only: 1 detection call per image, recognition in batches of {rec_batch}",
    }
    rows = []
    for name in times:
        found = sum(faces[name]) if name in faces else n_faces
        rows.append(
            [
                name if name != "ref" else f"pipeline@{opts.ref_label}",
                includes[name],
                fmt(n_images / total[name]),
                fmt(found / total[name]),
                fmt(total[name]),
                str(found),
            ]
        )
    throughput = Table(
        "Throughput (sum over rounds; absolute numbers are context)",
        ["arm", "includes", "images/s", "faces/s", "seconds", "faces found"],
        rows,
    )
    ratios = [
        Ratio(
            "pipeline vs naive (throughput)",
            per_round(times["naive"], times["pipeline"]),
            "naive time / pipeline time on the same images; > 1 means the pipeline is faster",
        )
    ]
    if ref:
        ratios.append(
            Ratio(
                f"pipeline vs pipeline@{opts.ref_label} (throughput)",
                per_round(times["ref"], times["pipeline"]),
                f"time at {opts.ref_label} / time now; > 1 means the working tree is faster",
            )
        )
    notes = [
        f"Images: {dataset.describe(images)}; model pack {pack}; det size {settings.det_size}.",
        f"{len(slices)} interleaved rounds of {slices[0][1] - slices[0][0]} images (each a whole number "
        "of the dataset's kind cycles, so every round has the same mix); warm-up "
        f"({len(warm)} images per arm) excluded.",
        f"The pipeline also writes {n_images} images + sidecars and upserts {n_faces} vectors: work the "
        "naive loop does not do. The pipeline's state persists across rounds, like a running server "
        "(the 'sample' images are byte-identical re-uploads: upserts of one content id).",
    ]
    if faces["naive"] and sum(faces["naive"]) != n_faces:
        notes.append(
            f"Face counts differ: naive {sum(faces['naive'])}, pipeline {n_faces} "
            "(different decoders: cv2 vs PIL; resampling changes a borderline detection)."
        )
    if any(errors):
        notes.append(f"{sum(errors)} image(s) failed in the pipeline arm.")
    pipeline_result = SectionResult(
        key="pipeline",
        heading=HEADINGS["pipeline"],
        ratios=ratios,
        tables=[throughput],
        notes=notes,
        numbers={
            "images": n_images,
            "faces": n_faces,
            "naive_images_per_s": n_images / total["naive"],
            "pipeline_images_per_s": n_images / total["pipeline"],
            "pipeline_faces_per_s": n_faces / total["pipeline"],
        },
    )

    floor_table = Table(
        "Model floor (sum over rounds)",
        ["", "value"],
        [
            ["detection calls", str(n_images)],
            [f"recognition faces (batches of {rec_batch})", str(n_faces)],
            ["floor seconds", fmt(total["floor"])],
            ["floor ms / image", ms(total["floor"] / n_images)],
            ["pipeline ms / image", ms(total["pipeline"] / n_images)],
            ["naive ms / image", ms(total["naive"] / n_images)],
        ],
    )
    floor_notes = [
        "Floor = onnxruntime session.run alone, on inputs letterboxed / aligned before the clock "
        "starts; sessions built like the engine's (intra-op threads = cores, inter-op 1, all graph "
        "optimisations), fixed so it means the same thing after the pipeline changes.",
        "Recognition cost does not depend on pixel content, so the floor replays the round's face "
        "count on one blob of real aligned faces from the set.",
        "A pipeline that overlaps calls (e.g. detection of one image while recognising another) can "
        "beat this sequential floor: an overhead factor below 1 is possible and honest.",
    ]
    if breakdown:
        floor_notes.append(
            "CPU-bound limit (last row of the breakdown): the pass's CPU time over every thread of the "
            "process (model calls as the pipeline runs them plus all the rest), spread perfectly over "
            "the usable cores, against the floor's wall time. No overlap of stages can bring the "
            "overhead factor below it without cutting CPU work. The model calls' share is their calling "
            "threads' CPU inside session.run plus all CPU of the threads Python did not start "
            "(onnxruntime's intra-op pools) during the pass."
        )
    if profile_path:
        floor_notes.append(
            f"cProfile of one pipeline pass: {profile_path.relative_to(REPO)} (+ pipeline.prof)."
        )
    floor_result = SectionResult(
        key="floor",
        heading=HEADINGS["floor"],
        ratios=[
            Ratio(
                "pipeline / model floor (overhead factor)",
                per_round(times["pipeline"], times["floor"]),
                "pipeline time / time of its model calls alone; 1 = no overhead",
            ),
            Ratio(
                "naive / model floor (overhead factor)",
                per_round(times["naive"], times["floor"]),
                "naive time / the same model calls alone",
            ),
        ],
        tables=[floor_table] + ([breakdown] if breakdown else []),
        notes=floor_notes,
        numbers={"floor_ms_per_image": 1000 * total["floor"] / n_images, **breakdown_numbers},
    )
    return [pipeline_result, floor_result]


if __name__ == "__main__":
    if "--ref-worker" in sys.argv:
        sys.exit(ref_worker("--quick" in sys.argv))
    sys.exit("usage: python -m bench.pipeline --ref-worker [--quick] (run by python -m bench --ref)")
