"""What every benchmark shares: options, the result model, interleaved rounds, percentiles, paths.

Timings on these machines are noisy (2 shared cores), so every comparison is a same-run ratio:
baseline and candidate alternate (A B A B ...) and the median of the per-round ratios is reported
with its spread (min-max). Absolute numbers are kept as context only.
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "build" / "bench"
DEFAULT_MODEL_ROOT = REPO.parent / "shared" / "models" / "insightface"
DEFAULT_MODEL_PACK = "offline_sc"

# Fake credentials and no config files: nothing in the suite can reach a real AWS account.
SAFE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
}


TIMES, DASH = "\u00d7", "\u2013"  # multiplication sign and en dash, for the report

# Report sections in order, and their headings (the smoke test checks every one is in the report).
HEADINGS = {
    "pipeline": "1. Face pipeline throughput",
    "floor": "2. Model floor and overhead factor",
    "batching": "3. Recognition batching",
    "http": "4. HTTP upload under concurrency",
    "index": "5. Vector index (embedded: SQLite + FAISS)",
    "lambdas": "6. Lambda functions",
    "memory": "7. Peak resident memory while serving",
    "video": "8. Video: processing vs decode-only, frames sampled vs tracks",
    "gpu": "9. GPU (CUDA): throughput, utilisation, cost per 1,000 images",
    "people": "10. People: clustering and verification quality, clustering time",
}


@dataclass(frozen=True)
class Options:
    quick: bool = False
    profile: bool = False
    ref_dir: Path | None = None  # a snapshot of gpu_app at another commit (the --ref arm)
    ref_label: str = ""

    def pick(self, full: Any, quick: Any) -> Any:
        return quick if self.quick else full


def usable_cores() -> int:
    """Cores this process may run on (its affinity), where the platform says; else all of them."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def model_pack() -> tuple[Path, str]:
    """The pack every arm loads (MODEL_ROOT / MODEL_PACK win over the shared offline pack)."""
    root = Path(os.environ.get("MODEL_ROOT") or DEFAULT_MODEL_ROOT).expanduser().resolve()
    return root, os.environ.get("MODEL_PACK") or DEFAULT_MODEL_PACK


def log(message: str) -> None:
    """Progress goes to stderr (the section's log file); results go to the JSON file."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- results ---------------------------------------------------------------------------------------
@dataclass
class Ratio:
    """A same-run ratio: one value per interleaved round; the median is the headline."""

    label: str
    values: list[float]
    meaning: str
    unit: str = TIMES
    headline: bool = True  # shown in the report's summary table (all ratios stay in their section)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else math.nan

    @property
    def low(self) -> float:
        return min(self.values) if self.values else math.nan

    @property
    def high(self) -> float:
        return max(self.values) if self.values else math.nan


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]]


@dataclass
class SectionResult:
    key: str  # pipeline | floor | batching | http | memory | index | lambdas
    heading: str
    ratios: list[Ratio] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    numbers: dict[str, float] = field(default_factory=dict)  # absolute context, for --compare
    seconds: float = 0.0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SectionResult:
        return cls(
            key=data["key"],
            heading=data["heading"],
            ratios=[Ratio(**r) for r in data.get("ratios", [])],
            tables=[Table(**t) for t in data.get("tables", [])],
            notes=list(data.get("notes", [])),
            numbers=dict(data.get("numbers", {})),
            seconds=float(data.get("seconds", 0.0)),
            error=data.get("error"),
        )


# --- measuring -------------------------------------------------------------------------------------
def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = function()
    return time.perf_counter() - started, value


def interleave(
    arms: dict[str, Callable[[], float]],
    rounds: int,
    before_round: Callable[[int], None] | None = None,
) -> dict[str, list[float]]:
    """Run every arm once per round in a fixed order (A B C, A B C, ...); each returns seconds.

    `before_round(i)` prepares round i (e.g. selects its slice of the data) outside the timing.
    """
    results: dict[str, list[float]] = {name: [] for name in arms}
    for round_no in range(rounds):
        if before_round is not None:
            before_round(round_no)
        for name, arm in arms.items():
            results[name].append(arm())
            log(f"  round {round_no + 1}/{rounds} {name}: {results[name][-1]:.3f}s")
    return results


def per_round(numerator: Sequence[float], denominator: Sequence[float]) -> list[float]:
    return [a / b for a, b in zip(numerator, denominator, strict=True) if b > 0]


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), q in [0, 100]."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def fmt(value: float, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def ms(seconds: float, digits: int = 1) -> str:
    return fmt(seconds * 1000.0, digits)
