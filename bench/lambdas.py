"""Item 6: the Lambda functions: cold import of each handler, and the warm dispatcher against moto.

Cold import: a fresh interpreter per measurement times `import <handler module>` inside itself
(interpreter start-up excluded; the process's total wall time is kept as context). The ratio is of
the import's CPU time (process_time): an import is one thread's work, so on an idle core (a Lambda's)
CPU time is its wall time, while on a shared machine the wall time also counts the time the process
waited for a core, which made the ratios swing 0.6-1.8x between rounds under load. Wall times are
reported beside it. The baseline,
interleaved with the handlers (boto3, dispatcher, controller, monitor, idle_stopper, boto3, ...),
is `import boto3` alone: the floor every handler pays. A first run of each compiles the .pyc files
and is excluded.

Warm dispatcher: the real handler in this process, configured as Terraform would (every resource
created in a moto server on loopback), one `batch_job` SNS message per invocation with a fresh
MessageId, so idempotency records and submits each one. Interleaved per message with the
duplicate delivery of the same record (idempotency answers from DynamoDB, nothing submitted) and a
bare boto3 SubmitJob call (the one AWS write a message exists for). moto is not AWS: these are
local round trips, so the ratios say where the handler's own time goes, not production latency.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

from bench.core import (
    DASH,
    HEADINGS,
    REPO,
    SAFE_AWS_ENV,
    Options,
    Ratio,
    SectionResult,
    Table,
    fmt,
    log,
    ms,
    per_round,
    percentile,
)

HANDLERS = (
    "lambdas.dispatcher.handler",
    "lambdas.controller.handler",
    "lambdas.monitor.handler",
    "lambdas.idle_stopper.handler",
)
BASELINE = "boto3"
IMPORT_CODE = (
    "import time; started = time.perf_counter(); cpu = time.process_time(); import {module}; "
    "print('IMPORT', time.process_time() - cpu, time.perf_counter() - started)"
)


def import_env() -> dict[str, str]:
    """A Lambda-like bare environment: no endpoint, fake credentials, the repository on the path."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TMPDIR", "HOME")}
    return keep | SAFE_AWS_ENV | {"PYTHONPATH": str(REPO), "AWS_LAMBDA_FUNCTION_NAME": "bench"}


def cold_import(module: str, importtime: bool = False) -> tuple[float, float, float, str]:
    """(import CPU seconds, import wall seconds, process wall seconds, stderr) of `import module` in
    a new interpreter."""
    command = [sys.executable, *(["-X", "importtime"] if importtime else []), "-c"]
    started = time.perf_counter()
    done = subprocess.run(
        [*command, IMPORT_CODE.format(module=module)],
        cwd=REPO,
        env=import_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    wall = time.perf_counter() - started
    match = re.search(r"IMPORT ([0-9.e-]+) ([0-9.e-]+)", done.stdout)
    if match is None:
        raise RuntimeError(f"no timing from `import {module}`: {done.stdout!r} {done.stderr!r}")
    return float(match.group(1)), float(match.group(2)), wall, done.stderr


def heaviest_imports(stderr: str, top: int = 6) -> list[tuple[str, float]]:
    """Third-party top-level packages by cumulative import time (`python -X importtime` output).

    A package imported by another is counted inside its importer too (botocore inside boto3).
    """
    entries = []
    for line in stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|\s+(\S+)$", line)
        if match is None or "." in match.group(2):
            continue
        name = match.group(2)
        if name not in sys.stdlib_module_names and not name.startswith("_"):
            entries.append((name, int(match.group(1)) / 1e6))
    return sorted(entries, key=lambda e: -e[1])[:top]


def measure_imports(reps: int) -> dict[str, Any]:
    modules = (BASELINE, *HANDLERS)
    for module in modules:  # compile .pyc, fill the page cache: not timed
        cold_import(module)
    imports: dict[str, list[float]] = {m: [] for m in modules}
    import_walls: dict[str, list[float]] = {m: [] for m in modules}
    walls: dict[str, list[float]] = {m: [] for m in modules}
    for rep in range(reps):
        for module in modules:
            cpu, import_wall, wall, _ = cold_import(module)
            imports[module].append(cpu)
            import_walls[module].append(import_wall)
            walls[module].append(wall)
        log(f"  cold imports round {rep + 1}/{reps}")
    heaviest = heaviest_imports(cold_import(HANDLERS[0], importtime=True)[3])
    return {"imports": imports, "import_walls": import_walls, "walls": walls, "heaviest": heaviest}


def measure_dispatcher(messages: int) -> dict[str, Any]:
    """Fresh, duplicate and bare-SubmitJob times per message, interleaved, against moto."""
    os.environ.update(SAFE_AWS_ENV)
    os.environ.pop("AWS_PROFILE", None)
    from tests.lambdas.resources import create_stack
    from tests.support.moto_server import run_moto_server

    with run_moto_server() as endpoint:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        import boto3

        stack = create_stack()
        os.environ.update(stack.environment("dispatcher"))
        os.environ["AWS_LAMBDA_FUNCTION_NAME"] = "dispatcher"
        boto3.client("s3").put_object(
            Bucket=stack.input_bucket, Key="jobs/gpu_processing.py", Body=b"print('hello')\n"
        )
        from lambdas.common.cache import clear_container_caches
        from lambdas.dispatcher.handler import lambda_handler
        from tests.lambdas.events import LambdaContext, sns_event, sns_record

        clear_container_caches()  # a new container: clients and configuration built on first use
        batch = boto3.client("batch")

        def message(number: int) -> dict[str, Any]:
            return sns_record(
                {
                    "trigger_type": "batch_job",
                    "data": {"script_key": "jobs/gpu_processing.py", "compute_type": "gpu"},
                    "metadata": {"user": "bench", "project": "bench", "experiment": f"e{number}"},
                },
                stack.notifications_topic_arn,
                message_id=str(uuid.uuid4()),
            )

        def invoke(record: dict[str, Any]) -> tuple[float, dict[str, Any]]:
            started = time.perf_counter()
            answer = lambda_handler(sns_event(record), LambdaContext())
            return time.perf_counter() - started, answer

        first, answer = invoke(message(-1))  # the container's first message: clients are created
        if answer["results"][0]["status"] != "dispatched":
            raise RuntimeError(f"the dispatcher did not dispatch: {answer}")
        for number in range(-3, -1):  # warm-up
            invoke(message(number))
        fresh, duplicate, bare = [], [], []
        for number in range(messages):
            record = message(number)
            seconds, answer = invoke(record)
            fresh.append(seconds)
            seconds, again = invoke(record)
            if again["results"] != answer["results"]:
                raise RuntimeError("the duplicate delivery did not return the first result")
            duplicate.append(seconds)
            started = time.perf_counter()
            batch.submit_job(
                jobName=f"bench-bare-{number}",
                jobQueue=stack.gpu_queue,
                jobDefinition=stack.script_definition_gpu,
            )
            bare.append(time.perf_counter() - started)
        clear_container_caches()
    return {"first": first, "fresh": fresh, "duplicate": duplicate, "bare": bare}


def run(opts: Options) -> list[SectionResult]:
    reps = opts.pick(15, 3)  # a round's ratio spreads by ~0.1 on a loaded machine: 15 steady the median
    log(f"cold imports: {len(HANDLERS)} handlers + {BASELINE}, {reps} rounds")
    imports = measure_imports(reps)
    messages = opts.pick(40, 12)
    log(f"warm dispatcher: {messages} messages against moto")
    warm = measure_dispatcher(messages)

    base = imports["imports"][BASELINE]
    import_rows = [
        [
            module,
            ms(statistics.median(imports["imports"][module])),
            f"{ms(min(imports['imports'][module]))}{DASH}{ms(max(imports['imports'][module]))}",
            ms(statistics.median(imports["import_walls"][module])),
            ms(statistics.median(imports["walls"][module])),
        ]
        for module in (BASELINE, *HANDLERS)
    ]
    ratios = [
        Ratio(
            f"cold import {module.split('.')[1]} vs import boto3",
            per_round(imports["imports"][module], base),
            "handler module import / boto3 import (CPU time), fresh interpreters, same round",
            headline=module == HANDLERS[0],
        )
        for module in HANDLERS
    ]
    ratios += [
        Ratio(
            "warm dispatcher message vs bare SubmitJob",
            per_round(warm["fresh"], warm["bare"]),
            "one SNS message through the handler / one boto3 SubmitJob, both against moto",
        ),
        Ratio(
            "duplicate delivery vs fresh message",
            per_round(warm["duplicate"], warm["fresh"]),
            "idempotency hit (nothing submitted) / first delivery",
        ),
    ]
    warm_rows = [
        [name, ms(percentile(values, 50)), ms(percentile(values, 95)), str(len(values))]
        for name, values in (
            ("fresh message (records, checks S3, submits)", warm["fresh"]),
            ("duplicate delivery (idempotency hit)", warm["duplicate"]),
            ("bare boto3 SubmitJob", warm["bare"]),
        )
    ]
    heaviest = ", ".join(f"{name} {fmt(seconds * 1000, 0)} ms" for name, seconds in imports["heaviest"])
    return [
        SectionResult(
            key="lambdas",
            heading=HEADINGS["lambdas"],
            ratios=ratios,
            tables=[
                Table(
                    f"Cold import in a fresh interpreter, {reps} rounds",
                    ["module", "import CPU ms (median)", f"min{DASH}max", "import wall ms", "process ms"],
                    import_rows,
                ),
                Table(
                    f"Warm dispatcher against moto on loopback, {messages} messages",
                    ["call", "p50 ms", "p95 ms", "n"],
                    [*warm_rows, ["first message of the container", ms(warm["first"]), "", "1"]],
                ),
            ],
            notes=[
                "Heaviest packages under the dispatcher (python -X importtime, cumulative, nested "
                f"counted in their importer too): {heaviest}.",
                "Import CPU = the import's process_time (what the ratios use: on a shared machine the wall "
                "time also counts waiting for a core); import wall = its perf_counter time; process "
                "= interpreter start + import + exit, measured from the parent (context).",
                "The fresh message path: idempotency (lambdas/common/idempotency.py: DynamoDB conditional "
                "put + update), S3 HEAD of the script, Batch SubmitJob, JSON log lines; all AWS calls go "
                "to moto on 127.0.0.1.",
            ],
            numbers={
                "dispatcher_import_ms": 1000 * statistics.median(imports["imports"][HANDLERS[0]]),
                "dispatcher_warm_ms": 1000 * percentile(warm["fresh"], 50),
            },
        )
    ]
