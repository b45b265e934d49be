"""Bounded in-process worker pool for `?async=true` uploads.

Accepted files are spooled to disk before the 202 answer, so a restart resumes them; when the queue
is full the API answers 429 instead of growing without bound.
"""

from __future__ import annotations

import json
import logging
import queue
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from gpu_app.service import FaceService, ImageOutcome, now_iso

log = logging.getLogger(__name__)

JobStatus = Literal["queued", "running", "succeeded", "failed"]
_CHUNK = 8  # images per pipeline call: progress granularity vs. batching
_STORAGE_RETRIES = 5  # a storage outage (503 per file) is retried with backoff before giving up
_KEEP_FINISHED = 1000


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
    done: int = 0
    results: list[ImageOutcome] = field(default_factory=list)
    error: str | None = None

    @property
    def total(self) -> int:
        return len(self.files)


class JobManager:
    def __init__(
        self,
        service: FaceService,
        *,
        workers: int,
        queue_size: int,
        spool_dir: Path,
        retry_delay: float = 1.0,
    ) -> None:
        self._service = service
        self._queue: queue.Queue[Job] = queue.Queue(maxsize=queue_size)
        self._stopping = threading.Event()
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._spool = spool_dir / "jobs"
        self._retry_delay = retry_delay
        self._threads = [
            threading.Thread(target=self._work, name=f"job-worker-{i}", daemon=True) for i in range(workers)
        ]
        self._running = 0

    def start(self) -> None:
        self._spool.mkdir(parents=True, exist_ok=True)
        for job in self._recover():
            self._jobs[job.id] = job
            self._queue.put(job)  # blocks only if more were spooled than the queue holds
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the jobs being run; queued ones stay spooled on disk and resume at the next start."""
        self._stopping.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    @property
    def in_progress(self) -> int:
        return self._running + self._queue.qsize()

    def submit(self, files: list[tuple[str, bytes]], collection: str) -> Job:
        if self._queue.full():
            raise QueueFullError(f"{self._queue.maxsize} jobs already queued; retry later")
        job_id = uuid.uuid4().hex
        folder = self._spool / job_id
        folder.mkdir(parents=True)
        spooled = []
        for i, (name, data) in enumerate(files):
            path = folder / f"{i:05d}"
            path.write_bytes(data)
            spooled.append((name, path))
        job = Job(id=job_id, collection=collection, files=spooled)
        (folder / "job.json").write_text(
            json.dumps({"collection": collection, "files": [[n, p.name] for n, p in spooled]})
        )
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            shutil.rmtree(folder, ignore_errors=True)
            raise QueueFullError(f"{self._queue.maxsize} jobs already queued; retry later") from None
        with self._lock:
            self._jobs[job_id] = job
            while len(self._jobs) > _KEEP_FINISHED:
                oldest = next(iter(self._jobs.values()))
                if oldest.status in ("queued", "running"):
                    break
                self._jobs.popitem(last=False)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def _recover(self) -> list[Job]:
        jobs = []
        for manifest in sorted(self._spool.glob("*/job.json")):
            try:
                raw = json.loads(manifest.read_text())
                files = [(name, manifest.parent / path) for name, path in raw["files"]]
            except (OSError, ValueError, KeyError) as exc:
                log.error("cannot resume spooled job %s: %s", manifest.parent.name, exc)
                continue
            log.info("resuming spooled job %s (%d files)", manifest.parent.name, len(files))
            jobs.append(Job(id=manifest.parent.name, collection=raw["collection"], files=files))
        return jobs

    def _work(self) -> None:
        while not self._stopping.is_set():
            try:
                job = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            with self._lock:
                self._running += 1
            job.status = "running"
            self._service.activity.begin()
            try:
                self._run(job)
                job.status = "succeeded"
            except Exception as exc:  # a worker must survive any job
                log.exception("job %s failed", job.id)
                job.status, job.error = "failed", str(exc)
            finally:
                job.finished_at = now_iso()
                self._service.activity.end()
                with self._lock:
                    self._running -= 1
            if job.status == "succeeded":
                shutil.rmtree(self._spool / job.id, ignore_errors=True)

    def _run(self, job: Job) -> None:
        for start in range(0, job.total, _CHUNK):
            chunk = job.files[start : start + _CHUNK]
            outcomes = self._service.process_uploads([(n, p.read_bytes()) for n, p in chunk], job.collection)
            for attempt in range(_STORAGE_RETRIES):
                retry = [i for i, o in enumerate(outcomes) if o.error and o.error.status == 503]
                if not retry:
                    break
                time.sleep(self._retry_delay * 2**attempt)
                again = self._service.process_uploads(
                    [(chunk[i][0], chunk[i][1].read_bytes()) for i in retry], job.collection
                )
                for i, outcome in zip(retry, again, strict=True):
                    outcomes[i] = outcome
            job.results.extend(outcomes)
            job.done += len(chunk)
