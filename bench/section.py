"""Run one benchmark worker in this (fresh) interpreter and write its results as JSON.

`python -m bench` starts one of these per worker, so each measurement gets a clean process: no
model sessions, thread pools, environment changes or memory left over from another section.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

from bench.core import Options, SectionResult, log

# worker -> module with `run(Options) -> list[SectionResult]`
WORKERS = {
    "pipeline": "bench.pipeline",
    "batching": "bench.batching",
    "http": "bench.http_load",
    "index": "bench.index",
    "lambdas": "bench.lambdas",
    "video": "bench.video",
    "gpu": "bench.gpu",
    "people": "bench.people",
}
# report section -> the worker that measures it (one worker can feed two sections)
SECTION_WORKER = {
    "pipeline": "pipeline",
    "floor": "pipeline",
    "batching": "batching",
    "http": "http",
    "memory": "http",
    "index": "index",
    "lambdas": "lambdas",
    "video": "video",
    "gpu": "gpu",
    "people": "people",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.section")
    parser.add_argument("worker", choices=sorted(WORKERS))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--ref-dir", type=Path)
    parser.add_argument("--ref-label", default="")
    args = parser.parse_args(argv)
    options = Options(quick=args.quick, profile=args.profile, ref_dir=args.ref_dir, ref_label=args.ref_label)
    started = time.perf_counter()
    log(f"section worker {args.worker} ({'quick' if args.quick else 'full'})")
    results: list[SectionResult] = importlib.import_module(WORKERS[args.worker]).run(options)
    elapsed = time.perf_counter() - started
    for result in results:
        result.seconds = elapsed
    args.out.write_text(json.dumps([r.to_json() for r in results], indent=1))
    log(f"section worker {args.worker} done in {elapsed:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
