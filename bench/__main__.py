"""`python -m bench [--quick] [--only NAME,...] [--output BENCHMARKS.md]`: run, print, write the report.

Each worker (pipeline, batching, http, index, lambdas) runs in its own interpreter with a time
limit; its results come back as JSON. A failed or timed-out worker is reported as FAILED in its
sections and makes the exit status 1; the others still run and the report is still written.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from bench import dataset, report
from bench.core import BUILD, HEADINGS, REPO, SAFE_AWS_ENV, SectionResult, model_pack
from bench.section import SECTION_WORKER, WORKERS

WORKER_ORDER = ("pipeline", "batching", "http", "index", "lambdas", "video", "gpu", "people")
# Seconds per worker before it is stopped (with its app / moto children): generous, still bounded.
TIMEOUTS = {"full": 420.0, "quick": 120.0}
# The index worker builds, reopens and queries 1M x 512 vectors in a full run.
WORKER_TIMEOUTS = {("index", "full"): 1500.0}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Benchmarks with same-run ratios; writes BENCHMARKS.md."
    )
    parser.add_argument("--quick", action="store_true", help="small counts, under 2 minutes")
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated sections: {', '.join(HEADINGS)} (default: all)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="markdown report (default: BENCHMARKS.md; with --quick build/bench/BENCHMARKS-quick.md)",
    )
    parser.add_argument("--json", type=Path, help="raw results (default: build/bench/results[-quick].json)")
    parser.add_argument("--profile", action="store_true", help="also cProfile one pipeline pass")
    parser.add_argument("--ref", help="also run the pipeline at this git commit, interleaved (before/after)")
    parser.add_argument("--compare", type=Path, help="results JSON of an earlier run to set beside this one")
    parser.add_argument("--timeout", type=float, help="seconds per worker (default 420 full, 120 quick)")
    return parser.parse_args(argv)


def snapshot(ref: str) -> tuple[Path, str]:
    """gpu_app/ at `ref`, extracted under build/bench (git archive: reads the repository only)."""
    sha = subprocess.run(
        ["git", "rev-parse", "--verify", f"{ref}^{{commit}}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    target = BUILD / f"ref-{sha[:12]}"
    if not (target / "gpu_app").is_dir():
        archive = subprocess.run(
            ["git", "archive", "--format=tar", sha, "gpu_app"], cwd=REPO, capture_output=True, check=True
        ).stdout
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(target, filter="data")
    return target, ref if ref.startswith(sha[:7]) else f"{ref} ({sha[:7]})"


def worker_env() -> dict[str, str]:
    root, pack = model_pack()
    env = os.environ | SAFE_AWS_ENV | {"MODEL_ROOT": str(root), "MODEL_PACK": pack, "PYTHONPATH": str(REPO)}
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):  # the lambdas worker sets its own moto endpoint
        env.pop(name, None)
    return env


def run_worker(name: str, args: argparse.Namespace, ref: tuple[Path, str] | None) -> list[SectionResult]:
    logs = BUILD / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    out = BUILD / f"section-{name}.json"
    out.unlink(missing_ok=True)
    command = [sys.executable, "-m", "bench.section", name, "--out", str(out)]
    command += ["--quick"] if args.quick else []
    command += ["--profile"] if args.profile and name == "pipeline" else []
    if ref and name == "pipeline":
        command += ["--ref-dir", str(ref[0]), "--ref-label", ref[1]]
    mode = "quick" if args.quick else "full"
    timeout = args.timeout or WORKER_TIMEOUTS.get((name, mode), TIMEOUTS[mode])
    log_path = logs / f"{name}.log"
    started = time.monotonic()
    print(f"  {name:<9} running (limit {timeout:.0f}s, log {log_path.relative_to(REPO)})", flush=True)
    error = None
    with log_path.open("w") as log:
        # Its own process group: on timeout the worker's children (the app, moto) stop with it.
        proc = subprocess.Popen(
            command, cwd=REPO, env=worker_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            code = proc.wait(timeout=timeout)
            if code != 0:
                error = f"worker exited with status {code}; see {log_path.relative_to(REPO)}"
        except subprocess.TimeoutExpired:
            error = f"stopped after the {timeout:.0f}s limit; see {log_path.relative_to(REPO)}"
        finally:
            if proc.poll() is None or error:
                stop_group(proc)
    elapsed = time.monotonic() - started
    print(f"  {name:<9} {'FAILED: ' + error if error else 'done'} in {elapsed:.0f}s", flush=True)
    if error is None:
        try:
            return [SectionResult.from_json(item) for item in json.loads(out.read_text())]
        except (OSError, ValueError, KeyError) as exc:
            error = f"unreadable results {out}: {exc}"
    tail = log_path.read_text().strip().splitlines()[-1:] if log_path.exists() else []
    detail = f"{error}" + (f" (last line: {tail[0][:200]})" if tail else "")
    return [
        SectionResult(key=key, heading=HEADINGS[key], error=detail, seconds=elapsed)
        for key, worker in SECTION_WORKER.items()
        if worker == name
    ]


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the worker's process group (ours: started with a new session), wait until every
    member is gone (the app finishes its in-flight requests), then SIGKILL whatever is left."""
    deadline = time.monotonic() + 20.0
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    while time.monotonic() < deadline:
        if proc.poll() is not None and not group_alive(proc.pid):
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    load_before = os.getloadavg()
    wanted = [s.strip() for s in args.only.split(",") if s.strip()] or list(HEADINGS)
    unknown = [s for s in wanted if s not in SECTION_WORKER]
    if unknown:
        print(f"unknown section(s) {unknown}; choose from {', '.join(HEADINGS)}", file=sys.stderr)
        return 2
    root, pack = model_pack()
    if not (root / "models" / pack).is_dir():
        print(
            f"model pack {pack!r} not found under {root}/models: set MODEL_ROOT and MODEL_PACK",
            file=sys.stderr,
        )
        return 2
    mode = "quick" if args.quick else "full"
    output = args.output or (BUILD / "BENCHMARKS-quick.md" if args.quick else REPO / "BENCHMARKS.md")
    json_path = args.json or BUILD / f"results{'-quick' if args.quick else ''}.json"
    BUILD.mkdir(parents=True, exist_ok=True)
    print(f"bench ({mode}): {dataset.describe(dataset.load(args.quick))}", flush=True)
    ref = snapshot(args.ref) if args.ref else None

    results: list[SectionResult] = []
    workers = [w for w in WORKER_ORDER if any(SECTION_WORKER[s] == w for s in wanted)]
    for worker in workers:
        assert worker in WORKERS
        results += [r for r in run_worker(worker, args, ref) if r.key in wanted]

    earlier = None
    if args.compare:
        earlier_results = [SectionResult.from_json(i) for i in json.loads(args.compare.read_text())]
        earlier = (earlier_results, str(args.compare))
    info = report.machine_info(mode, started, load_before)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps([r.to_json() for r in results], indent=1))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(report.render_markdown(results, info, earlier))
    print()
    print(report.render_text(results, info))
    print(f"\nreport: {output}\nresults: {json_path}")
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
