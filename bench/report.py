"""The report: machine facts, a summary of the same-run ratios, each section's tables, methodology.

Rendered twice from the same results: a plain-text summary for the terminal and BENCHMARKS.md.
"""

from __future__ import annotations

import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata

from bench.core import DASH, HEADINGS, REPO, TIMES, Ratio, SectionResult, model_pack, usable_cores

PACKAGES = (
    "onnxruntime",
    "insightface",
    "faiss-cpu",
    "numpy",
    "opencv-python-headless",
    "pillow",
    "fastapi",
    "uvicorn",
    "boto3",
    "moto",
    "aws-lambda-powertools",
)

METHODOLOGY = """\
- **Ratios, not times.** These machines are shared and noisy, so every comparison pits a baseline
  against a candidate in the same run, alternating them (A B A B ...; several arms: A B C, A B C),
  and reports the median of the per-round ratios with their spread (min-max). Absolute numbers
  are context only; compare runs by their ratios.
- **Same work on both sides.** The same generated images (build/bench/dataset-v*/, deterministic),
  the same model pack and the same det size for every arm; each section says what each side
  includes (decode, alignment, storage, index).
- **Warm-up excluded.** Every arm runs once (a few images, a first call per shape, a first import)
  before any timing.
- **Bounded.** Counts are fixed and every load loop also stops at a deadline; anything not done by
  then is reported as such. Each section runs in its own interpreter with a time limit.
- **Isolation.** Anything that listens binds 127.0.0.1; AWS is moto on loopback with fake
  credentials.
- **Before/after.** `python -m bench --ref <commit>` adds the pipeline at that commit (a `git
  archive` snapshot of gpu_app/ in build/bench/, run in its own interpreter) as one more
  interleaved arm: the same-run before/after ratio. `--compare old.json` puts an earlier run's
  ratios beside this run's.
"""


# --- facts about the machine and the code --------------------------------------------------------------
def _cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo").read().splitlines():  # noqa: PTH123, SIM115
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gb() -> str:
    try:
        for line in open("/proc/meminfo").read().splitlines():  # noqa: PTH123, SIM115
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GB"
    except OSError:
        pass
    return "unknown"


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.rstrip() if done.returncode == 0 else ""  # porcelain lines start with a space


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_info(mode: str, started: float, load_before: Sequence[float]) -> list[tuple[str, str]]:
    import onnxruntime

    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    # Uncommitted changes in the measured code make the commit alone misleading: say where.
    changed = _git("status", "--porcelain", "--", "gpu_app", "lambdas", "bench").splitlines()
    paths = sorted({line[3:].strip('"').rstrip("/") for line in changed})
    if paths:
        shown = ", ".join(paths[:6]) + (f" and {len(paths) - 6} more" if len(paths) > 6 else "")
        commit += f" + uncommitted: {shown}"
    root, pack = model_pack()
    cores = os.cpu_count() or 0
    usable = usable_cores()
    load_after = os.getloadavg()
    return [
        ("date (UTC)", datetime.now(UTC).strftime("%Y-%m-%d %H:%M")),
        ("git commit", commit),
        ("mode", mode),
        ("wall time of the run", f"{time.monotonic() - started:.0f} s"),
        ("CPU", _cpu_model()),
        ("cores", f"{cores} logical, {usable} usable by this process"),
        ("memory", _memory_gb()),
        (
            "load average (1 min) before / after",
            f"{load_before[0]:.2f} / {load_after[0]:.2f} (other work on the machine)",
        ),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("Python", sys.version.split()[0]),
        ("packages", ", ".join(f"{p} {_version(p)}" for p in PACKAGES)),
        ("onnxruntime providers", ", ".join(onnxruntime.get_available_providers())),
        ("model pack", f"{pack} ({root})"),
    ]


# --- formatting ------------------------------------------------------------------------------------------
def ratio_value(ratio: Ratio) -> str:
    if math.isnan(ratio.median):
        return "n/a"
    return f"{ratio.median:.2f}{ratio.unit}"


def ratio_spread(ratio: Ratio) -> str:
    if len(ratio.values) < 2:
        return "single round"
    return f"{ratio.low:.2f}{DASH}{ratio.high:.2f}"


def ordered(results: Sequence[SectionResult]) -> list[SectionResult]:
    rank = {key: i for i, key in enumerate(HEADINGS)}
    return sorted(results, key=lambda r: rank.get(r.key, len(rank)))


def summary_rows(results: Sequence[SectionResult]) -> list[list[str]]:
    rows = []
    for result in ordered(results):
        number = result.heading.split(".")[0]
        if result.error:
            rows.append([number, f"{result.heading}: FAILED", "", "", "", result.error.splitlines()[0]])
            continue
        rows += [
            [number, r.label, ratio_value(r), ratio_spread(r), str(len(r.values)), r.meaning]
            for r in result.ratios
            if r.headline
        ]
    return rows


SUMMARY_COLUMNS = ["#", "ratio", "median", f"spread (min{DASH}max)", "rounds", "meaning"]


def text_table(columns: Sequence[str], rows: Sequence[Sequence[str]], max_width: int = 60) -> str:
    cells = [[c if len(c) <= max_width else c[: max_width - 1] + "…" for c in row] for row in rows]
    widths = [max(len(str(x)) for x in column) for column in zip(columns, *cells, strict=True)]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)), line]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(out)


def md_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def cell(value: str) -> str:
        return value.replace("|", "\\|")

    out = ["| " + " | ".join(cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def render_text(results: Sequence[SectionResult], info: list[tuple[str, str]]) -> str:
    facts = {k: v for k, v in info}
    head = f"Benchmarks ({facts['mode']}), {facts['date (UTC)']} UTC, {facts['git commit']}, {facts['CPU']}"
    parts = [head, "", text_table(SUMMARY_COLUMNS[:5], [r[:5] for r in summary_rows(results)])]
    for result in ordered(results):
        if result.error:
            continue
        for table in result.tables[:1]:  # the section's main table; the rest are in the markdown
            parts += ["", f"{result.heading}: {table.title}", text_table(table.columns, table.rows, 40)]
    return "\n".join(parts)


def _ratio_line(ratio: Ratio) -> str:
    spread = ratio_spread(ratio)
    rounds = f"{len(ratio.values)} rounds" if len(ratio.values) != 1 else "1 round"
    return f"- **{ratio.label}**: {ratio_value(ratio)} (spread {spread}, {rounds}) — {ratio.meaning}"


def _section_md(result: SectionResult | None, key: str) -> list[str]:
    lines = [f"## {HEADINGS[key]}", ""]
    if result is None:
        return [*lines, "_Not run in this invocation (see `--only`)._", ""]
    if result.error:
        return [*lines, f"**FAILED**: {result.error}", ""]
    lines += [_ratio_line(r) for r in result.ratios] + [""]
    for table in result.tables:
        lines += [f"**{table.title}**", "", md_table(table.columns, table.rows), ""]
    lines += [f"- {note}" for note in result.notes] + [""]
    return lines


def _compare_md(results: Sequence[SectionResult], earlier: Sequence[SectionResult], label: str) -> list[str]:
    before = {r.label: r for result in earlier for r in result.ratios}
    rows = []
    for result in ordered(results):
        for ratio in result.ratios:
            old = before.get(ratio.label)
            if old is None or math.isnan(old.median) or not old.median:
                continue
            rows.append(
                [ratio.label, ratio_value(old), ratio_value(ratio), f"{ratio.median / old.median:.2f}"]
            )
    lines = ["## Compared with an earlier run", ""]
    lines.append(
        f"Each ratio is same-run normalised, so ratios of ratios are comparable across runs "
        f"(absolute times are not). Earlier run: `{label}`."
    )
    return [*lines, "", md_table(["ratio", "earlier", "now", "now / earlier"], rows), ""]


# Issue 18's goals: the figure measured (a ratio label or a numbers key), the baseline before the
# work (BENCHMARKS.md of 2026-11-23, quoted by the issue), the target and its test.
@dataclass(frozen=True)
class Goal:
    goal: str
    measure: str
    source: str  # "ratio:<label>" or "number:<key>"
    baseline: str
    target: str
    met: Callable[[float], bool] | None

    @property
    def limit(self) -> str:
        """What holds the figure back on this machine, shown when the target is not met."""
        return LIMITS.get(self.source.split(":", 1)[1], "")


X = TIMES
GOALS = [
    Goal(
        "1",
        "pipeline overhead factor",
        "ratio:pipeline / model floor (overhead factor)",
        f"1.32{X}",
        f"<= 1.15{X}",
        lambda v: v <= 1.15,
    ),
    Goal(
        "1",
        "CPU-bound limit of the overhead factor (the pass's CPU time / usable cores / floor: the best "
        "any overlap reaches with this work on these cores)",
        "number:cpu_bound_limit",
        "not measured",
        "context",
        None,
    ),
    Goal(
        "1",
        "pipeline vs naive loop",
        "ratio:pipeline vs naive (throughput)",
        f"1.50{X}",
        f">= 2{X}",
        lambda v: v >= 2.0,
    ),
    Goal(
        "2",
        "query p95 at 1M x 512, ms",
        "number:query_p95_ms_1000k_512",
        "~40 ms p50 at 100k (exact)",
        "<= 10 ms",
        lambda v: v <= 10.0,
    ),
    Goal(
        "2",
        "query CPU p95 at 1M x 512, ms (the same queries' work, without waits for a core)",
        "number:query_cpu_p95_ms_1000k_512",
        "not measured",
        "context",
        None,
    ),
    Goal(
        "2",
        "recall@10 vs exact, 1M",
        "number:recall10_1000k_512",
        "1.000 (exact)",
        ">= 0.98",
        lambda v: v >= 0.98,
    ),
    Goal(
        "2",
        "recall@10 at the match threshold, 1M",
        "number:recall10_threshold_1000k_512",
        "1.000 (exact)",
        ">= 0.98",
        lambda v: v >= 0.98,
    ),
    Goal(
        "2",
        "insert / bare FAISS add, 1M",
        "ratio:index insert vs bare FAISS add (1M x 512)",
        f"58.96{X} at 100k",
        f"<= 5{X}",
        lambda v: v <= 5.0,
    ),
    Goal(
        "2",
        "insert vectors/s, 1M",
        "number:insert_per_s_1000k_512",
        "10,176/s at 100k",
        ">= 50,000/s",
        lambda v: v >= 50_000,
    ),
    Goal(
        "2",
        "reopen the 1M index, s",
        "number:reopen_s_1000k_512",
        "rebuild from SQLite",
        "<= 10 s",
        lambda v: v <= 10.0,
    ),
    Goal(
        "2",
        "index memory per vector (FAISS + bfloat16 copy), 1M",
        "number:memory_bytes_per_vector_1000k_512",
        "2,064 (flat)",
        "reported",
        None,
    ),
    Goal(
        "3",
        "peak RSS serving / RSS ready",
        "ratio:peak RSS while serving / RSS when ready",
        f"3.68{X}",
        f"<= 1.5{X}",
        lambda v: v <= 1.5,
    ),
    *(
        Goal(
            "4",
            f"cold import {name} / boto3",
            f"ratio:cold import {name} vs import boto3",
            baseline,
            f"<= 1.1{X}",
            lambda v: v <= 1.1,
        )
        for name, baseline in (
            ("dispatcher", f"1.30{X}"),
            ("controller", f"1.19{X}"),
            ("monitor", f"1.11{X}"),
            ("idle_stopper", f"1.15{X}"),
        )
    ),
    Goal(
        "5",
        "GPU images/s",
        "number:gpu_images_per_s",
        "not measured",
        ">= 0.56/s (1,000 in 30 min)",
        lambda v: v >= 1000 / 1800,
    ),
]


LIMITS = {
    "pipeline / model floor (overhead factor)": "CPU-bound on these 2 cores (row 'CPU-bound limit' "
    "below; section 2's breakdown). Two runs of 2026-11-30 (load ~3.4): a pass costs ~29 ms of CPU "
    "per image over all threads, ~21 ms of it the model calls (the calling threads plus "
    "onnxruntime's pool threads, which yield; the floor's spinning sessions make the same calls in "
    "~9 ms of wall on both cores) and ~8.3 ms everything else (9.7 at 867b032): decode 1.7, the "
    "inference worker's letterbox, box decoding and alignment ~2.5, thumbnails 1.4, writes 1.1, "
    "people 0.8, sidecar 0.1. Spread perfectly over 2 cores that is 1.27-1.32x the floor (1.31-1.40x "
    "at 867b032) whatever overlaps what; 1.15x allows ~2 ms of CPU per image beside the model calls, "
    "or needs calls that cost less CPU. The critical path is the inference worker, busy ~88% of the "
    "wall: its model calls and ~3 ms of its own Python per image. Cut in this round: sidecar JSON "
    "0.7 -> 0.1 ms (orjson), people placement 1.3 -> 0.8 ms (one batched index search, one read and "
    "one write of assignments per request, boxes parsed without json), alignment 1.1 -> 0.8 ms "
    "(stacked estimate); the wall moved within the noise (same-run 0.99x and 1.02x against "
    "867b032). Measured slower or no gain here (same-run pipeline arms under load; "
    "micro-benchmarks for the last three): letterboxing "
    "on the workers 0.73-0.82x, indexing and placing image by image 0.69-0.74x, spinning threads "
    "0.41x, two single-thread inference workers 0.79x (the same CPU per image), NMS over a "
    "pairwise-overlap matrix (2x slower at 36 faces), thumbnail tiles resized without their grey "
    "square (same cost), OpenCV on one thread (same cost).",
    "pipeline vs naive (throughput)": "Bounded by naive / floor (section 2): a pipeline at the "
    "floor would be that much faster than the naive loop, and this one runs at the overhead factor "
    "of the row above it.",
    "query_p95_ms_1000k_512": "A 1M query's own work is ~3-3.5 ms of CPU (column 'CPU p95'; "
    "profiled under load ~3: fast scan of half the 512 lists ~1.8 ms, bfloat16 re-score of 2,000 "
    "candidates ~0.6 ms, SQLite read of the 40 finalists ~0.4 ms, their exact scores ~0.1 ms), so a "
    "wall p95 above 10 ms is time spent waiting for a core on a busy machine (compare the CPU p95). "
    "Earlier tails were the bench's own: the numpy exact arm beside every query (60-80 of 200 queries "
    "ran; the ground truth is now computed once, untimed) and numpy's BLAS threads spinning on the "
    "second core after it (the exact arm now runs einsum on one thread).",
    "recall10_1000k_512": "Which lists are scanned bounds recall: a face's 9th and 10th neighbours are "
    "strangers at cosine ~0.4 lying in lists far from the query. Half of the lists are scanned and "
    "2,000 candidates re-scored (0.989-0.990 over all 200 queries in runs under load); more candidates "
    "or probes buy recall with latency.",
    "insert_per_s_1000k_512": "47-52k/s at 1M in this round's runs at load ~1 (43k at load ~2.5): "
    "at the line, so a busy machine tips it. Where 1M inserts go (instrumented, load ~2.3): on the "
    "writer thread SQLite executemany ~7.6 s and commit ~4.9 s (the WAL write, and every ~7th commit "
    "a checkpoint copying the WAL into the database with two fsyncs) plus ~1 s of record checks; on the "
    "cache thread, in parallel, the FAISS add ~8.3 s (the bare fast-scan add rate bounds it) and the "
    "bfloat16 copy; in series, the retrains (at 262k: k-means ~1.2 s on one thread, re-adding 262k "
    "vectors ~1.5-2.5 s). This round cut the retrains (from the in-memory copy slice by slice: no read "
    "of every SQLite row, no 2 GB float32 matrix, whose page faults cost more than the training here; "
    "the first IVF index sized for 4x its vectors, so none at 65k) and the copy's conversion (10x). "
    "Tried, no gain measured under load: checkpoints on a background thread (wal_autocheckpoint=0, "
    "PASSIVE ones paced at 0.2 s, the WAL bounded by a TRUNCATE past 256 MB; same-run A/B 18.2k and "
    "23.3k/s vs 19.8k and 24.2k/s with SQLite's own, load ~4.5: the copy then competes for the same "
    "two cores), cache_size 64 MB, wal_autocheckpoint 8000, 32/64 KB pages (within noise), all cores "
    "for the coarse k-means (1.2 s vs 1.0 s under load).",
    "peak RSS while serving / RSS when ready": "The ready process holds the warmed model (one "
    "detection and one full recognition batch before /ready; offline_sc ~300 MB); serving adds one "
    "image's transients per ingest worker (2 on these cores): its encoded body, decoded pixels and "
    "the detector's working set. Without the warm-up the same bench gave 2.2x (ready 180 MB, peak "
    "~400 MB); before the ingest workers (4 decode threads and a second decode for thumbnails) 3.4x.",
    "cold import dispatcher vs import boto3": "No Powertools any more (its package __init__ and "
    "idempotency utility were ~20 ms: lambdas/common/idempotency.py makes the same DynamoDB calls on the "
    "same records). What is left after boto3 is ~5 ms of CPU: the dispatcher's ~20 modules (S3 routing, "
    "triggers, Batch requests; models and config are NamedTuples, ~0.05 ms each to define against "
    "~0.4-0.9 ms for a frozen dataclass), contract/, unicodedata and the JSON logger. Under load the "
    "per-round ratio spreads by +-0.1, so a median this close to 1.1 can land on either side.",
    "gpu_images_per_s": "No GPU on this machine: not measured (section 9).",
}
for _name in ("controller", "monitor", "idle_stopper"):
    LIMITS[f"cold import {_name} vs import boto3"] = (
        "What is left after boto3 is 2-4 ms of CPU (monitor ~2, idle stopper ~3, controller ~4): the "
        "function's own modules (its own config and schemas only, NamedTuples), contract/health.py "
        "(a frozen dataclass and TypedDicts, ~0.7 ms; the controller and idle stopper parse /health on "
        "every invocation), unicodedata and the JSON logger. Garbage collection is not it: no full "
        "collection runs during a handler's import, the collections after boto3 take ~0.2 ms, and "
        "gc.freeze() after boto3 changed nothing measurable. Under load the per-round ratio spreads "
        "by +-0.1 around a median this close to 1.1."
    )


def goal_rows(results: Sequence[SectionResult]) -> list[list[str]]:
    ratios = {r.label: r.median for result in results for r in result.ratios}
    numbers = {k: v for result in results for k, v in result.numbers.items()}
    rows = []
    for g in GOALS:
        kind, name = g.source.split(":", 1)
        value = (ratios if kind == "ratio" else numbers).get(name)
        if value is None or math.isnan(value):
            why = g.limit if "gpu" in g.source else ""
            rows.append([g.goal, g.measure, g.baseline, g.target, "not measured in this run", "", why])
            continue
        shown = f"{value:.2f}{X}" if kind == "ratio" else (f"{value:.3f}" if value < 1.5 else f"{value:,.2f}")
        verdict = "" if g.met is None else ("met" if g.met(value) else "NOT met")
        rows.append(
            [g.goal, g.measure, g.baseline, g.target, shown, verdict, g.limit if verdict == "NOT met" else ""]
        )
    return rows


def render_markdown(
    results: Sequence[SectionResult],
    info: list[tuple[str, str]],
    earlier: tuple[Sequence[SectionResult], str] | None = None,
) -> str:
    by_key = {r.key: r for r in results}
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`python -m bench`); see bench/README.md for what each number means. "
        "Regenerate rather than edit.",
        "",
        "## Machine",
        "",
        md_table(["", ""], [[k, v] for k, v in info]),
        "",
        "## Summary",
        "",
        f"Same-run ratios (median of the per-round ratios; spread = min{DASH}max over rounds).",
        "",
        md_table(SUMMARY_COLUMNS, summary_rows(results)),
        "",
    ]
    lines += [
        "## Issue 18 goals",
        "",
        "Each goal's figure from this run beside the baseline before the work and the target.",
        "",
        md_table(
            ["goal", "measure", "baseline", "target", "this run", "", "what limits it"], goal_rows(results)
        ),
        "",
    ]
    if earlier is not None:
        lines += _compare_md(results, earlier[0], earlier[1])
    for key in HEADINGS:
        lines += _section_md(by_key.get(key), key)
    lines += ["## Methodology", "", METHODOLOGY]
    return "\n".join(lines)
