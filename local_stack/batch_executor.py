"""AWS Batch, locally: jobs submitted to the stack's queues really run, as processes.

moto without Docker accepts SubmitJob and marks the job SUCCEEDED at once without running anything.
So this executor runs the jobs, keeps their states (`snapshot()`, served at `GET /local/batch/jobs`
by the Lambda host) and reports them to moto (moto_server.py's job-state route), so `aws batch
list-jobs --job-status RUNNING` and describe-jobs tell the truth:

- it polls ListJobs on the stack's queues and takes every job it has not seen (array children are
  its own to run); DescribeJobs gives the job as Batch would run it: the job definition's command
  (`python` is this interpreter) and environment merged with the submit overrides;
- `aws batch terminate-job` (moto records the reason) stops the job's runs, which then fail with it;
- the definition's variables get the local replacements (model folder, CPU) and the run gets the
  credentials of the definition's job role (sts:AssumeRole);
- each run is a process ("container") with the variables Batch adds (AWS_BATCH_JOB_ID,
  AWS_BATCH_JOB_ATTEMPT, AWS_BATCH_JQ_NAME, AWS_BATCH_CE_NAME, and AWS_BATCH_JOB_ARRAY_INDEX/SIZE for
  array children), its own scratch folder as the container's disk (OUTPUT_DIR), and fake credentials
  with moto as the only endpoint; at most `parallelism` run at once, the compute environment's size;
- the attempt's timeout (the job definition's `attemptDurationSeconds`) ends it with SIGTERM, then
  SIGKILL; its output goes to the console and to CloudWatch Logs (moto) in the job log group,
  stream `<definition>/default/<task id>`, as the awslogs driver writes it;
- every state change is sent to the monitor function as EventBridge's "Batch Job State Change"
  event: the DescribeJobs job with this executor's status, reason, times, attempts (exit code, log
  stream) and array properties. RUNNING, SUCCEEDED and FAILED are sent (not SUBMITTED..STARTING).

Not mirrored: resource requirements (no vCPU/memory/GPU limits), retries (only Spot reclaims are
retried in AWS, and there are none here), dependencies, and jobs that were submitted before a restart
(moto starts empty).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final

from local_stack.cloudwatch import CloudWatchStream
from local_stack.events import batch_state_change
from local_stack.local_aws import REPO, LocalAws, child_environment
from local_stack.moto_server import BATCH_STATUS_PATH
from local_stack.processes import Console, Loop, ManagedProcess
from local_stack.resources import role_credentials

POLL_SECONDS: Final = 1.0
STOP_GRACE_SECONDS: Final = 10.0
DEFAULT_TIMEOUT_SECONDS: Final = 14400  # a definition without a timeout (Terraform's sets one)
SUCCESS_REASON: Final = "Essential container in task exited"
TIMEOUT_REASON: Final = "Job attempt duration exceeded timeout"
STOPPED_REASON: Final = "The local stack stopped"

Emit = Callable[[dict[str, Any]], None]


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclasses.dataclass
class Run:
    """One container run: a plain job, or one child of an array job."""

    job_id: str  # "<id>" or "<id>:<index>"
    index: int | None
    status: str = "RUNNABLE"
    exit_code: int | None = None
    reason: str = ""
    log_stream: str = ""
    task_arn: str = ""
    started_at: int | None = None
    stopped_at: int | None = None


@dataclasses.dataclass
class Job:
    description: Mapping[str, Any]  # DescribeJobs, as moto had it when the job was found
    runs: list[Run]
    array_size: int | None
    status: str = "RUNNABLE"
    reason: str = ""
    started_at: int | None = None
    stopped_at: int | None = None
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    @property
    def job_id(self) -> str:
        return str(self.description["jobId"])

    def environment(self) -> dict[str, str]:
        container = self.description.get("container") or {}
        return {item["name"]: item["value"] for item in container.get("environment") or []}


class BatchExecutor(Loop):
    def __init__(
        self,
        aws: LocalAws,
        *,
        queues: Mapping[str, str],  # queue name -> compute environment name
        name_prefix: str,
        log_group: str,
        aws_environment: Mapping[str, str],
        local_settings: Mapping[str, str],
        workdir: Path,
        emit: Emit,
        console: Console,
        moto_url: str,
        parallelism: int = 2,
    ) -> None:
        super().__init__("batch", POLL_SECONDS, self._poll, console.sink("batch"))
        self._aws = aws
        self._batch, self._logs = aws.client("batch"), aws.client("logs")
        self._local_settings = dict(local_settings)
        self._moto_url = moto_url
        self._definitions: dict[str, Mapping[str, Any]] = {}
        self._queues = dict(queues)
        self._name_prefix = name_prefix
        self._log_group = log_group
        self._aws_environment = dict(aws_environment)
        self._workdir = workdir
        self._emit = emit
        self._console = console
        self._parallelism = parallelism
        self._pool = ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix="batch-run")
        self._jobs: dict[str, Job] = {}
        self._running: dict[str, ManagedProcess] = {}
        self._lock = threading.Lock()

    # --- discovery -----------------------------------------------------------------------------
    def _poll(self) -> None:
        new: list[str] = []
        for queue in self._queues:
            pages = self._batch.get_paginator("list_jobs").paginate(jobQueue=queue)
            for page in pages:
                for summary in page["jobSummaryList"]:
                    job_id = summary["jobId"]
                    if ":" not in job_id and job_id not in self._jobs and job_id not in new:
                        new.append(job_id)
        for start in range(0, len(new), 100):  # DescribeJobs takes 100 ids at most
            for description in self._batch.describe_jobs(jobs=new[start : start + 100])["jobs"]:
                self._accept(description)
        self._watch_terminations()

    def _watch_terminations(self) -> None:
        """`aws batch terminate-job` (or cancel-job) gives the job a reason in moto: stop its runs."""
        with self._lock:
            running = {job_id.split(":")[0] for job_id in self._running}
        if not running:
            return
        for description in self._batch.describe_jobs(jobs=sorted(running)[:100])["jobs"]:
            reason = description.get("statusReason")
            job = self._jobs.get(str(description["jobId"]))
            if not reason or job is None or job.reason:
                continue
            with job.lock:
                job.reason = str(reason)
            self._log(f"{description['jobName']} ({job.job_id}): terminated ({reason})")
            with self._lock:
                processes = [p for job_id, p in self._running.items() if job_id.split(":")[0] == job.job_id]
            for process in processes:
                threading.Thread(target=process.stop, args=(STOP_GRACE_SECONDS,), daemon=True).start()

    def _accept(self, description: Mapping[str, Any]) -> None:
        size = (description.get("arrayProperties") or {}).get("size")
        job_id = str(description["jobId"])
        runs = [Run(f"{job_id}:{i}", i) for i in range(size)] if size else [Run(job_id, None)]
        job = Job(description=description, runs=runs, array_size=size)
        with self._lock:
            self._jobs[job_id] = job
        queue = str(description["jobQueue"]).rsplit("/", 1)[-1]
        self._log(f"{description['jobName']} ({job_id}) on {queue}: {len(runs)} run(s)")
        parents = [str(dependency["jobId"]) for dependency in description.get("dependsOn") or []]
        if parents:  # e.g. the materialize step after an embedding array job
            threading.Thread(
                target=self._after, args=(job, parents), name="batch-depends", daemon=True
            ).start()
            return
        for run in runs:
            self._pool.submit(self._execute, job, run)

    def _after(self, job: Job, parents: list[str]) -> None:
        """As Batch: start the job once every job it depends on (an array: every child) succeeded;
        fail it without running when one failed."""
        while not self.stopping.wait(POLL_SECONDS):
            with self._lock:
                states = [self._jobs[p].status if p in self._jobs else "SUBMITTED" for p in parents]
            if "FAILED" in states:
                self._log(f"{job.description['jobName']} ({job.job_id}): a job it depends on failed")
                for run in job.runs:
                    run.exit_code, run.reason = None, f"Dependent job failed: one of {', '.join(parents)}"
                    self._finish(job, run)
                return
            if all(state == "SUCCEEDED" for state in states):
                for run in job.runs:
                    self._pool.submit(self._execute, job, run)
                return

    # --- running -------------------------------------------------------------------------------
    def _command(self, job: Job) -> list[str]:
        command = list((job.description.get("container") or {}).get("command") or [])
        if command and command[0] in ("python", "python3"):
            command[0] = sys.executable  # the image's interpreter is this virtualenv's
        return command

    def _definition(self, job: Job) -> Mapping[str, Any]:
        """The job definition Terraform registered (DescribeJobs leaves out its role and timeout)."""
        arn = str(job.description["jobDefinition"])
        if arn not in self._definitions:
            found = self._batch.describe_job_definitions(jobDefinitions=[arn])["jobDefinitions"]
            self._definitions[arn] = found[0] if found else {}
        return self._definitions[arn]

    def _timeout(self, job: Job) -> float:
        timeout = (job.description.get("timeout") or {}).get("attemptDurationSeconds")
        timeout = timeout or (self._definition(job).get("timeout") or {}).get("attemptDurationSeconds")
        return float(timeout or DEFAULT_TIMEOUT_SECONDS)

    def _run_environment(self, job: Job, run: Run, folder: Path) -> dict[str, str]:
        queue = str(job.description["jobQueue"]).rsplit("/", 1)[-1]
        variables = job.environment() | {
            "AWS_BATCH_JOB_ID": run.job_id,
            "AWS_BATCH_JOB_ATTEMPT": "1",
            "AWS_BATCH_JQ_NAME": queue,
            "AWS_BATCH_CE_NAME": self._queues.get(queue, queue),
            "PYTHONPATH": str(REPO),
            "PYTHONUNBUFFERED": "1",
        }
        if run.index is not None:
            variables |= {
                "AWS_BATCH_JOB_ARRAY_INDEX": str(run.index),
                "AWS_BATCH_JOB_ARRAY_SIZE": str(job.array_size),
            }
        # What exists only in AWS (the image's model folder, the GPU) replaced with local values.
        variables = {k: v for k, v in (variables | self._local_settings).items() if v != ""}
        # The container's own disk, and its share of this machine's cores.
        variables.setdefault("OUTPUT_DIR", str(folder / "output"))
        variables.setdefault("INTRA_OP_THREADS", str(max(1, (os.cpu_count() or 1) // self._parallelism)))
        # The job role's credentials, as the ECS task-role endpoint hands them to the container.
        credentials = {}
        role_arn = (self._definition(job).get("containerProperties") or {}).get("jobRoleArn")
        if role_arn:
            credentials = role_credentials(self._aws, str(role_arn), run.job_id.replace(":", "-"))
        return child_environment(self._aws_environment | credentials, variables)

    def _execute(self, job: Job, run: Run) -> None:
        if self.stopping.is_set():
            return
        try:
            self._start(job, run)
            folder = self._workdir / run.job_id.replace(":", "-")
            folder.mkdir(parents=True, exist_ok=True)
            try:
                run.exit_code, run.reason = self._run_process(job, run, folder)
            finally:
                shutil.rmtree(folder, ignore_errors=True)  # a container's disk goes with it
        except Exception as exc:  # the job fails, as Batch fails a container that cannot start
            run.exit_code, run.reason = None, f"CannotStartContainerError: {type(exc).__name__}: {exc}"
        try:
            self._finish(job, run)
        except Exception as exc:  # a worker thread: report, never die silently
            self._log(f"{run.job_id}: {type(exc).__name__}: {exc}")

    def _start(self, job: Job, run: Run) -> None:
        definition = str(job.description["jobDefinition"]).rsplit("/", 1)[-1].split(":")[0]
        task_id = uuid.uuid4().hex
        run.log_stream = f"{definition.removeprefix(self._name_prefix + '-')}/default/{task_id}"
        run.task_arn = str(job.description["jobArn"]).replace(":batch:", ":ecs:").split(":job/")[0]
        run.task_arn += f":task/{self._name_prefix}/{task_id}"
        run.status, run.started_at = "RUNNING", _now_ms()
        with job.lock:
            first = job.status != "RUNNING"
            if first:
                job.status, job.started_at = "RUNNING", run.started_at
        if first:
            self._report(job.job_id, "RUNNING")
            self._send(job, None)
        if run.index is not None:
            self._report(run.job_id, "RUNNING")
            self._send(job, run)

    def _run_process(self, job: Job, run: Run, folder: Path) -> tuple[int, str]:
        label = f"{job.description['jobName'][:40]}{'' if run.index is None else f'[{run.index}]'}"
        stream = CloudWatchStream(self._logs, self._log_group, run.log_stream, self._log)
        show = self._console.sink(f"job {run.job_id[:8]}{'' if run.index is None else f':{run.index}'}")

        def sink(line: str) -> None:
            show(line)
            stream.add(line)

        self._log(f"{label}: starting {' '.join(self._command(job)[1:])} ({run.log_stream})")
        process = ManagedProcess(
            label,
            self._command(job),
            env=self._run_environment(job, run, folder),
            cwd=folder,
            sink=sink,
        )
        with self._lock:
            self._running[run.job_id] = process
        try:
            code = process.wait(self._timeout(job))
            reason = SUCCESS_REASON
            if code is None:
                reason = STOPPED_REASON if self.stopping.is_set() else TIMEOUT_REASON
                code = process.stop(grace=STOP_GRACE_SECONDS)
            elif self.stopping.is_set():
                reason = STOPPED_REASON
            with job.lock:
                if job.reason and job.stopped_at is None:  # terminated (aws batch terminate-job)
                    reason = job.reason
        finally:
            with self._lock:
                self._running.pop(run.job_id, None)
            process.stop(grace=1.0)  # anything it left behind
            stream.flush()
        return code, reason

    def _finish(self, job: Job, run: Run) -> None:
        run.stopped_at = _now_ms()
        run.status = "SUCCEEDED" if run.exit_code == 0 and run.reason == SUCCESS_REASON else "FAILED"
        self._log(f"{run.job_id}: {run.status} (exit code {run.exit_code}; {run.reason})")
        if run.index is not None:
            self._report(run.job_id, run.status, run.reason)
            self._send(job, run)
        with job.lock:
            if any(r.stopped_at is None for r in job.runs) or job.stopped_at is not None:
                return
            failed = [r for r in job.runs if r.status == "FAILED"]
            job.status = "FAILED" if failed else "SUCCEEDED"
            job.stopped_at = run.stopped_at
            if job.array_size is None:
                job.reason = run.reason
            else:
                job.reason = f"{len(failed)} of {job.array_size} child jobs failed" if failed else ""
        self._log(f"{job.description['jobName']} ({job.job_id}): {job.status}")
        self._report(job.job_id, job.status, job.reason)
        self._send(job, None)

    def _report(self, job_id: str, status: str, reason: str = "") -> None:
        """The job's real state into moto, so `aws batch list-jobs --job-status` and describe-jobs tell it."""
        request = urllib.request.Request(  # noqa: S310 - the stack's loopback moto
            f"{self._moto_url}{BATCH_STATUS_PATH}{urllib.parse.quote(job_id)}",
            data=json.dumps({"status": status, "statusReason": reason}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10):  # noqa: S310
                pass
        except (urllib.error.URLError, OSError) as exc:
            self._log(f"{job_id}: state {status} not reported to moto: {exc}")

    # --- events --------------------------------------------------------------------------------
    def detail(self, job: Job, run: Run | None) -> dict[str, Any]:
        """The job (run=None) or one array child, as DescribeJobs would show it now."""
        detail = dict(job.description)
        container = dict(detail.get("container") or {})
        container["environment"] = [{"name": k, "value": v} for k, v in job.environment().items()]
        child = run is not None and run.index is not None
        single = job.runs[0] if job.array_size is None else None
        subject = run if child else single
        with job.lock:
            status = subject.status if subject is not None else job.status
            detail |= {
                "status": status,
                "statusReason": (subject.reason if subject is not None else job.reason) or None,
                "startedAt": subject.started_at if subject is not None else job.started_at,
                "stoppedAt": subject.stopped_at if subject is not None else job.stopped_at,
            }
        if subject is not None and subject.started_at is not None:
            container |= {"logStreamName": subject.log_stream, "taskArn": subject.task_arn}
            attempt_container: dict[str, Any] = {
                "taskArn": subject.task_arn,
                "logStreamName": subject.log_stream,
                "networkInterfaces": [],
            }
            if subject.stopped_at is not None:
                container["exitCode"] = subject.exit_code
                attempt_container["exitCode"] = subject.exit_code
                detail["attempts"] = [
                    {
                        "container": attempt_container,
                        "startedAt": subject.started_at,
                        "stoppedAt": subject.stopped_at,
                        "statusReason": subject.reason,
                    }
                ]
        else:
            detail["attempts"] = []
        if child:
            assert run is not None
            detail |= {"jobId": run.job_id, "jobArn": f"{job.description['jobArn']}:{run.index}"}
            detail["arrayProperties"] = {"index": run.index}
        elif job.array_size is not None:
            summary = {state: 0 for state in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING")}
            summary |= {"SUCCEEDED": 0, "FAILED": 0}
            for item in job.runs:
                summary[item.status] += 1
            detail["arrayProperties"] = {"statusSummary": summary, "size": job.array_size}
        detail["container"] = container
        return detail

    def _send(self, job: Job, run: Run | None) -> None:
        if self.stopping.is_set():
            return
        self._emit(self.detail(job, run))

    # --- status and stop -----------------------------------------------------------------------
    def snapshot(self) -> list[dict[str, Any]]:
        """Every job this executor took, newest first: what `aws batch describe-jobs` cannot tell."""
        with self._lock:
            jobs = list(self._jobs.values())
        result = []
        for job in reversed(jobs):
            with job.lock:
                result.append(
                    {
                        "jobId": job.job_id,
                        "jobName": job.description["jobName"],
                        "jobQueue": str(job.description["jobQueue"]).rsplit("/", 1)[-1],
                        "status": job.status,
                        "statusReason": job.reason,
                        "arraySize": job.array_size,
                        "environment": job.environment(),
                        "runs": [dataclasses.asdict(run) for run in job.runs],
                    }
                )
        return result

    def stop(self, timeout: float = 30.0) -> None:
        super().stop(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            running = list(self._running.values())
        for process in running:
            process.stop(grace=STOP_GRACE_SECONDS)
        self._pool.shutdown(wait=True)


def monitor_event(emit_async: Callable[[dict[str, Any]], Any], account_id: str, region: str) -> Emit:
    """EventBridge's rule on `Batch Job State Change`: the detail wrapped as the event, sent on."""
    return lambda detail: emit_async(batch_state_change(detail, account_id, region))
