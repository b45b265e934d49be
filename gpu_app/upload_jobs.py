"""Bounded in-process worker pool for `?async=true` uploads.

The spool on disk is the queue: accepted files are written there before the 202 answer and stay
until each one is stored, or refused for its own fault (a bad image). A transient failure (storage
unavailable) keeps the file spooled and retried with capped backoff, without limit and across
restarts; a job is `succeeded` only when no file is pending, and its record (not its files) stays
for GET /jobs across restarts. The API answers 429 when too many new jobs wait, but a restart
resumes every spooled job, however many.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gpu_app.service import INTERNAL_ERROR, FaceService, FileError, ImageOutcome, now_iso
from gpu_app.sidecar import SidecarFace

log = logging.getLogger(__name__)

JobStatus = Literal["queued", "running", "retrying", "succeeded", "failed"]
_CHUNK = 8  # images per pipeline call: progress granularity vs. batching
_INTERNAL_ERROR_ATTEMPTS = 3  # an internal error (5xx, exception) of one file is retried, then refused
_KEEP_FINISHED = 1000
_MANIFEST = "job.json"
_RESULTS = "results.jsonl"
_FINISHED = "finished.json"  # a finished job keeps its manifest and results (not its files) for GET /jobs
_HALF_SPOOL_AGE = 60.0  # seconds after which a spool folder without a manifest is a dead submit


class QueueFullError(RuntimeError):
    pass


@dataclass(slots=True)
class Job:
    id: str
    collection: str
    files: list[tuple[str, Path]]
    status: JobStatus = "queued"
    created_at: str = field(default_factory=now_iso)
    finished_at: str | None = None
    outcomes: dict[int, ImageOutcome] = field(default_factory=dict)  # final ones, by file index
    error: str | None = None
    retry_reason: str | None = None  # why pending files wait, while the job is `retrying`
    next_attempt_at: str | None = None
    attempts: int = 0  # rounds that left files pending
    not_before: float = 0.0  # monotonic time of the next attempt
    internal_errors: dict[int, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return len(self.files)

    @property
    def done(self) -> int:
        return len(self.outcomes)

    @property
    def pending(self) -> int:
        return self.total - self.done

    @property
    def results(self) -> list[ImageOutcome]:
        outcomes = self.outcomes.copy()  # atomic: a worker may add one meanwhile
        return [outcomes[i] for i in sorted(outcomes)]

    def retry_internal(self, index: int) -> bool:
        """Count an internal error (the app's or the model's, not the file's) of a file: True while
        it may be retried, False once it has failed too often and is refused alone."""
        self.internal_errors[index] = self.internal_errors.get(index, 0) + 1
        return self.internal_errors[index] < _INTERNAL_ERROR_ATTEMPTS

    def pending_indexes(self) -> list[int]:
        return [i for i in range(self.total) if i not in self.outcomes]


def write_spool(spool: Path, files: list[tuple[str, bytes]], collection: str) -> Job:
    """Write the files and the manifest of a new job; the manifest last, so a crash leaves no half job."""
    job_id = uuid.uuid4().hex
    folder = spool / job_id
    folder.mkdir(parents=True)
    try:
        spooled = []
        for i, (name, data) in enumerate(files):
            path = folder / f"{i:05d}"
            path.write_bytes(data)
            spooled.append((name, path))
        tmp = folder / f"{_MANIFEST}.tmp"
        tmp.write_text(json.dumps({"collection": collection, "files": [[n, p.name] for n, p in spooled]}))
        tmp.replace(folder / _MANIFEST)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # not accepted: the client gets an error
        raise
    return Job(id=job_id, collection=collection, files=spooled)


class UploadJobQueue:
    def __init__(
        self,
        service: FaceService,
        *,
        workers: int,
        queue_size: int,
        spool_dir: Path,
        retry_delay: float = 1.0,
        retry_max_delay: float = 60.0,
    ) -> None:
        self._service = service
        self._queue_size = queue_size
        self._waiting: list[Job] = []  # queued or retrying, in arrival order
        self._wakeup = threading.Condition()
        self._stopping = threading.Event()
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._spool = spool_dir / "jobs"
        self._retry_delay = retry_delay
        self._retry_max_delay = retry_max_delay
        self._threads = [
            threading.Thread(target=self._work, name=f"job-worker-{i}", daemon=True) for i in range(workers)
        ]
        self._running = 0

    def start(self) -> None:
        """Start the workers, then hand them every spooled job: recovery never waits for a free slot."""
        self._spool.mkdir(parents=True, exist_ok=True)
        with self._wakeup:
            if self._stopping.is_set():
                return  # stopped before it started (SIGTERM while loading): nothing to run
            for thread in self._threads:
                thread.start()
        recovered = self._recover()
        with self._wakeup:
            for job in recovered:
                self._jobs[job.id] = job
                if job.status != "succeeded":
                    self._waiting.append(job)
            self._forget_finished()
            self._wakeup.notify_all()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the chunk being processed; unfinished jobs stay spooled and resume at the next start.

        Safe in any state: before start, during recovery, or twice.
        """
        with self._wakeup:
            self._stopping.set()
            self._wakeup.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            if thread.ident is not None:  # started
                thread.join(max(0.0, deadline - time.monotonic()))

    @property
    def depth(self) -> int:
        return len(self._waiting)

    @property
    def in_progress(self) -> int:
        return self._running + len(self._waiting)

    def submit(self, files: list[tuple[str, bytes]], collection: str) -> Job:
        if len(self._waiting) >= self._queue_size:
            raise QueueFullError(f"{self._queue_size} jobs already queued; retry later")
        job = write_spool(self._spool, files, collection)  # before the 202: accepted means on disk
        with self._wakeup:
            self._jobs[job.id] = job
            self._waiting.append(job)
            self._forget_finished()
            self._wakeup.notify()
        return job

    def get(self, job_id: str) -> Job | None:
        with self._wakeup:
            return self._jobs.get(job_id)

    def _forget_finished(self) -> None:
        while len(self._jobs) > _KEEP_FINISHED:
            oldest = next(iter(self._jobs.values()))
            if oldest.status not in ("succeeded", "failed"):
                break
            self._jobs.popitem(last=False)
            shutil.rmtree(self._spool / oldest.id, ignore_errors=True)

    # --- recovery ------------------------------------------------------------------------------
    def _recover(self) -> list[Job]:
        jobs = []
        for folder in self._spool.iterdir():
            # A submit cut short before its manifest was never acknowledged: nothing to resume.
            if not (folder / _MANIFEST).exists() and time.time() - folder.stat().st_mtime > _HALF_SPOOL_AGE:
                shutil.rmtree(folder, ignore_errors=True)
        for manifest in sorted(self._spool.glob(f"*/{_MANIFEST}"), key=lambda p: p.stat().st_mtime):
            folder = manifest.parent
            try:
                raw = json.loads(manifest.read_text())
                job = Job(
                    id=folder.name,
                    collection=raw["collection"],
                    files=[(name, folder / path) for name, path in raw["files"]],
                )
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.error("cannot resume spooled job %s (left in %s): %s", folder.name, folder, exc)
                continue
            job.outcomes = _read_outcomes(folder / _RESULTS, job.total)
            if (folder / _FINISHED).exists():
                job.status, job.finished_at = "succeeded", _finished_at(folder / _FINISHED)
                jobs.append(job)
                continue
            log.info("resuming spooled job %s (%d of %d files pending)", job.id, job.pending, job.total)
            jobs.append(job)
        return jobs

    # --- work ----------------------------------------------------------------------------------
    def _next_job(self) -> Job | None:
        """The oldest job due now; waits for one. None when stopping."""
        with self._wakeup:
            while not self._stopping.is_set():
                now = time.monotonic()
                due = [job for job in self._waiting if job.not_before <= now]
                if due:
                    job = due[0]
                    self._waiting.remove(job)
                    self._running += 1
                    return job
                wait = min((job.not_before - now for job in self._waiting), default=1.0)
                self._wakeup.wait(min(max(wait, 0.01), 1.0))
        return None

    def _work(self) -> None:
        while (job := self._next_job()) is not None:
            job.status = "running"
            self._service.activity.begin()
            try:
                self._run(job)
            except Exception as exc:  # a worker must survive anything; the job stays spooled
                log.exception("job %s: unexpected error; it stays spooled", job.id)
                job.retry_reason = f"internal error: {type(exc).__name__}: {exc}"
            finally:
                self._service.activity.end()
                self._settle(job)

    def _settle(self, job: Job) -> None:
        """Finish the job, or put it back to retry its pending files after a backoff."""
        with self._wakeup:
            self._running -= 1
            if job.pending == 0:
                job.status, job.finished_at = "succeeded", now_iso()
                job.retry_reason = job.next_attempt_at = None
            elif self._stopping.is_set():
                job.status = "queued"  # stays spooled: the next start resumes it
            else:
                job.attempts += 1
                delay = min(self._retry_delay * 2 ** (job.attempts - 1), self._retry_max_delay)
                job.status, job.not_before = "retrying", time.monotonic() + delay
                job.next_attempt_at = _iso_in(delay)
                self._waiting.append(job)
                self._wakeup.notify()
                log.warning(
                    "job %s: %d file(s) pending, retry in %.1f s: %s",
                    job.id,
                    job.pending,
                    delay,
                    job.retry_reason,
                )
        if job.pending == 0:
            # The files are stored: drop their spooled copies, keep the record for GET /jobs.
            try:
                for _, path in job.files:
                    path.unlink(missing_ok=True)
                marker = self._spool / job.id / f"{_FINISHED}.tmp"
                marker.write_text(json.dumps({"finished_at": job.finished_at}))
                marker.replace(marker.with_suffix(""))
            except OSError as exc:  # the work is done; a restart would only redo it (idempotently)
                log.warning("job %s: could not close its spool: %s", job.id, exc)

    def _run(self, job: Job) -> None:
        """One pass over the job's pending files; final outcomes are recorded as they come."""
        pending = job.pending_indexes()
        reasons: list[str] = []
        for start in range(0, len(pending), _CHUNK):
            if self._stopping.is_set():
                return
            chunk = pending[start : start + _CHUNK]
            for i, outcome in zip(chunk, self._process(job, chunk), strict=True):
                if outcome is None:
                    reasons.append("internal error, retried")
                elif outcome.error is not None and (
                    outcome.error.transient or (outcome.error.status >= 500 and job.retry_internal(i))
                ):
                    reasons.append(outcome.error.reason)
                else:
                    self._record(job, i, outcome)
        job.retry_reason = reasons[-1] if reasons else None

    def _process(self, job: Job, chunk: list[int]) -> list[ImageOutcome | None]:
        """Outcomes of these files (None: retry later); an unexpected error is narrowed to its file."""
        try:
            uploads = [(job.files[i][0], job.files[i][1].read_bytes()) for i in chunk]
            return list(self._service.process_uploads(uploads, job.collection))
        except Exception:
            if len(chunk) > 1:
                log.exception("job %s: a chunk failed; processing its files one by one", job.id)
                return [self._process(job, [i])[0] for i in chunk]
            i, (name, path) = chunk[0], job.files[chunk[0]]
            log.exception("job %s: file %s failed", job.id, name)
        # One file alone raised: retried a few times (the cause may pass), then refused alone.
        if not path.exists():
            return [ImageOutcome(file=name, error=FileError(500, "the spooled copy of this file was lost"))]
        if job.retry_internal(i):
            return [None]
        return [ImageOutcome(file=name, error=FileError(500, INTERNAL_ERROR))]

    def _record(self, job: Job, index: int, outcome: ImageOutcome) -> None:
        """Persist a final outcome before counting it, so a restart neither redoes nor forgets it."""
        with (self._spool / job.id / _RESULTS).open("a") as results:
            results.write(json.dumps({"index": index, "outcome": _outcome_to_json(outcome)}) + "\n")
        job.outcomes[index] = outcome


def _finished_at(marker: Path) -> str | None:
    try:
        return str(json.loads(marker.read_text())["finished_at"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _iso_in(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds))


def _outcome_to_json(outcome: ImageOutcome) -> dict[str, Any]:
    # Embeddings stay in the sidecar; the job keeps what its status page shows.
    return {
        "file": outcome.file,
        "image_id": outcome.image_id,
        "storage_key": outcome.storage_key,
        "faces": [
            {"face_id": f.face_id, "bbox": f.bbox, "landmarks": f.landmarks, "det_score": f.det_score}
            for f in outcome.faces
        ],
        "width": outcome.width,
        "height": outcome.height,
        "indexed": outcome.indexed,
        "warning": outcome.warning,
        "error": {"status": outcome.error.status, "reason": outcome.error.reason} if outcome.error else None,
    }


def _outcome_from_json(raw: dict[str, Any]) -> ImageOutcome:
    error = raw.get("error")
    return ImageOutcome(
        file=raw["file"],
        image_id=raw.get("image_id"),
        storage_key=raw.get("storage_key"),
        faces=[
            SidecarFace(
                face_id=f["face_id"],
                bbox=tuple(f["bbox"]),
                landmarks=tuple(tuple(p) for p in f["landmarks"]),
                det_score=f["det_score"],
                embedding=(),
            )
            for f in raw.get("faces", [])
        ],
        width=raw.get("width"),
        height=raw.get("height"),
        indexed=bool(raw.get("indexed")),
        warning=raw.get("warning"),
        error=FileError(error["status"], error["reason"]) if error else None,
    )


def _read_outcomes(path: Path, total: int) -> dict[int, ImageOutcome]:
    """Final outcomes recorded before a restart; a torn last line (a crash mid-write) is ignored."""
    outcomes: dict[int, ImageOutcome] = {}
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return outcomes
    for line in lines:
        try:
            raw = json.loads(line)
            index = int(raw["index"])
            if 0 <= index < total:
                outcomes[index] = _outcome_from_json(raw["outcome"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a torn line in %s", path)
    return outcomes
