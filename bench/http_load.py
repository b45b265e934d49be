"""Items 4 and 7: `POST /upload-images/` under concurrency 1, 8, 32, and the app's resident memory.

The app runs as users run it (`python -m gpu_app serve`, its own process, loopback, local storage,
embedded index, default settings) on a scratch state directory. A thread pool of `requests`
sessions (keep-alive, one per thread) sends one image per request; every request body is unique
(a JPEG comment segment or PNG text chunk carrying a tag), so each upload is a new image rather than
an upsert of an earlier one.

Rounds interleave the levels (c1 c8 c32, c1 c8 c32, ...), each level sending the same images in
a round; the count is bounded and every level also stops at a deadline. Latency is per request
(client side, connection reuse included); throughput is completed requests / wall time of the level.
Memory: VmRSS when ready, and the peak (VmHWM, reset before each level) while serving.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests

from bench import dataset, memory
from bench.core import (
    BUILD,
    HEADINGS,
    Options,
    Ratio,
    SectionResult,
    Table,
    fmt,
    log,
    model_pack,
    ms,
    percentile,
)
from bench.dataset import BenchImage
from tests.support.live_app import App, app_env, run_app

LEVELS = (1, 8, 32)
REQUEST_TIMEOUT = 120.0


@contextmanager
def serve(state: Path, timeout: float = 180.0) -> Iterator[App]:
    """`python -m gpu_app serve` on a free loopback port, without an API key; yields once /ready is 200."""
    root, pack = model_pack()
    env = os.environ | app_env(state, MODEL_ROOT=str(root), MODEL_PACK=pack)
    env.pop("API_KEY", None)
    with run_app(env, BUILD / "logs" / "http-app.log", timeout) as app:
        yield app


@dataclass
class LevelRun:
    concurrency: int
    latencies: list[float] = field(default_factory=list)
    wall: float = 0.0
    faces: int = 0
    failures: dict[int, int] = field(default_factory=dict)  # status (0 = no answer) -> count
    skipped: int = 0  # not sent: the level's deadline passed
    peak_mb: float = 0.0

    @property
    def done(self) -> int:
        return len(self.latencies)

    @property
    def throughput(self) -> float:
        return self.done / self.wall if self.wall > 0 else 0.0


def upload_load(
    app: App, images: Sequence[BenchImage], concurrency: int, tag: str, deadline_s: float
) -> LevelRun:
    """Send every image once (one per request) with `concurrency` requests in flight."""
    result = LevelRun(concurrency)
    local = threading.local()
    lock = threading.Lock()
    deadline = time.monotonic() + deadline_s

    def one(number: int) -> None:
        if time.monotonic() > deadline:
            with lock:
                result.skipped += 1
            return
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        image = images[number].tagged(f"{tag}-{number}")  # a new image, not an upsert of one
        started = time.perf_counter()
        try:
            response = session.post(
                f"{app.url}/upload-images/",
                files=[("files", (image.name, image.data, image.content_type))],
                timeout=REQUEST_TIMEOUT,
            )
            status = response.status_code
            faces = sum(len(r.get("faces", [])) for r in response.json().get("results", []))
        except (requests.RequestException, ValueError):
            status, faces = 0, 0
        elapsed = time.perf_counter() - started
        with lock:
            if status == 200:
                result.latencies.append(elapsed)
                result.faces += faces
            else:
                result.failures[status] = result.failures.get(status, 0) + 1

    memory.reset_peak(app.pid)
    with memory.RssSampler(app.pid) as sampler, ThreadPoolExecutor(concurrency) as pool:
        started = time.perf_counter()
        list(pool.map(one, range(len(images))))
        result.wall = time.perf_counter() - started
    result.peak_mb = max(memory.peak_mb(app.pid), sampler.maximum_mb)
    return result


def ready_latency(app: App, count: int) -> list[float]:
    """GET /ready round trips: the HTTP stack alone, no model work (context for latencies)."""
    latencies = []
    with requests.Session() as session:
        for _ in range(count):
            started = time.perf_counter()
            session.get(f"{app.url}/ready", timeout=10).raise_for_status()
            latencies.append(time.perf_counter() - started)
    return latencies


def run(opts: Options) -> list[SectionResult]:
    images = dataset.load(opts.quick)
    rounds = opts.pick(3, 2)
    per_level = opts.pick(60, 10)  # requests per level per round (full: three cycles of kinds)
    deadline = opts.pick(120.0, 40.0)
    BUILD.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="http-", dir=BUILD) as state, serve(Path(state)) as app:
        at_ready = memory.status(app.pid)
        resettable = memory.reset_peak(app.pid)
        log(f"app pid {app.pid} ready: RSS {at_ready['VmRSS'] / 1024:.0f} MB")
        warm = upload_load(app, dataset.load(True)[:4], 1, "warmup", 60.0)  # not reported
        ready_ms: list[float] = []
        runs: dict[int, list[LevelRun]] = {c: [] for c in LEVELS}
        for round_no in range(rounds):
            start = (round_no * per_level) % len(images)
            chosen = [images[(start + i) % len(images)] for i in range(per_level)]
            ready_ms += ready_latency(app, 10)
            for concurrency in LEVELS:
                run_ = upload_load(app, chosen, concurrency, f"r{round_no}c{concurrency}", deadline)
                runs[concurrency].append(run_)
                log(
                    f"  round {round_no + 1}/{rounds} c={concurrency}: {run_.done} ok in "
                    f"{run_.wall:.2f}s, p50 {1000 * statistics.median(run_.latencies or [0]):.0f} ms, "
                    f"peak {run_.peak_mb:.0f} MB"
                )
        final = memory.status(app.pid)
    for concurrency, level_runs in runs.items():
        if not any(r.done for r in level_runs):
            codes = {code: n for r in level_runs for code, n in r.failures.items()}
            raise RuntimeError(
                f"no upload succeeded at concurrency {concurrency} (status: count {codes}); "
                f"see {BUILD / 'logs' / 'http-app.log'}"
            )

    rows = []
    for concurrency, level_runs in runs.items():
        latencies = [x for r in level_runs for x in r.latencies]
        done = sum(r.done for r in level_runs)
        wall = sum(r.wall for r in level_runs)
        failures = sum(sum(r.failures.values()) for r in level_runs)
        skipped = sum(r.skipped for r in level_runs)
        rows.append(
            [
                str(concurrency),
                f"{done}/{rounds * per_level}" + (f" ({failures} failed)" if failures else ""),
                fmt(done / wall if wall else 0.0),
                fmt(sum(r.faces for r in level_runs) / wall if wall else 0.0),
                ms(percentile(latencies, 50), 0),
                ms(percentile(latencies, 95), 0),
                ms(percentile(latencies, 99), 0),
                str(skipped),
            ]
        )
    ratios = [
        Ratio(
            f"HTTP throughput c={c} vs c=1",
            [a.throughput / b.throughput for a, b in zip(runs[c], runs[1], strict=True) if b.throughput],
            "requests/s at this concurrency / at concurrency 1, same images, same round",
        )
        for c in LEVELS[1:]
    ]
    ratios.append(
        Ratio(
            "HTTP p50 latency c=1 vs GET /ready",
            [statistics.median(r.latencies) / statistics.median(ready_ms) for r in runs[1] if r.latencies],
            "upload round trip / bare HTTP round trip (the stack alone)",
            headline=False,
        )
    )
    in_flight = ", ".join(f"c={c}: at most {min(c, per_level)} in flight" for c in LEVELS)
    http_result = SectionResult(
        key="http",
        heading=HEADINGS["http"],
        ratios=ratios,
        tables=[
            Table(
                f"POST /upload-images/, 1 image per request, {rounds} rounds x {per_level} requests "
                "per level",
                ["concurrency", "ok", "req/s", "faces/s", "p50 ms", "p95 ms", "p99 ms", "not sent"],
                rows,
            )
        ],
        notes=[
            f"Each includes multipart upload, decode, detect, embed, store, index and the JSON answer; "
            f"GET /ready p50 {ms(percentile(ready_ms, 50))} ms is the HTTP stack alone.",
            f"{in_flight}. Client and app share the same cores; the client is a thread pool of "
            "requests sessions (keep-alive).",
            f"Warm-up ({warm.done} requests) excluded. Level deadline {deadline:.0f}s; requests not "
            "sent by then are counted, never silently dropped.",
        ],
        numbers={
            f"c{r[0]}_{name}": float(r[i].replace(",", "")) if r[i] != "n/a" else 0.0
            for r in rows
            for i, name in ((2, "req_per_s"), (4, "p50_ms"), (5, "p95_ms"))
        },
    )

    level_peaks = {c: max(r.peak_mb for r in runs[c]) for c in LEVELS}
    ready_rss = at_ready["VmRSS"] / 1024
    memory_result = SectionResult(
        key="memory",
        heading=HEADINGS["memory"],
        ratios=[
            Ratio(
                "peak RSS while serving / RSS when ready",
                [max(runs[c][i].peak_mb for c in LEVELS) / ready_rss for i in range(rounds)],
                "per round, the highest per-level peak over the idle, model-loaded process",
            )
        ],
        tables=[
            Table(
                "App process (python -m gpu_app serve), MB",
                ["moment", "MB"],
                [
                    ["VmRSS when /ready first answers", fmt(ready_rss, 0)],
                    ["VmHWM when ready (model load peak)", fmt(at_ready["VmHWM"] / 1024, 0)],
                    *[[f"peak while serving c={c}", fmt(level_peaks[c], 0)] for c in LEVELS],
                    ["VmRSS after the load", fmt(final["VmRSS"] / 1024, 0)],
                    ["threads after the load", str(final.get("Threads", 0))],
                ],
            )
        ],
        notes=[
            "Peak per level: VmHWM reset (clear_refs 5) before the level and read after it, or a 50 ms "
            "VmRSS sampler's maximum if the reset is refused, whichever is higher (the reset was "
            f"{'accepted' if resettable else 'refused: sampler only'}). RSS the allocators keep after "
            "a level counts towards the next level's peak.",
        ],
        numbers={"ready_rss_mb": ready_rss, "peak_rss_mb": max(level_peaks.values())},
    )
    return [http_result, memory_result]
