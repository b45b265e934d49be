"""`POST /videos`: turn a stored video into face tracks on this instance (short videos; long ones go
to the Batch `video` job), asynchronously; `GET /videos/{video_job_id}` reports progress and result.

Outputs go to the app's storage under `<S3_UPLOAD_PATH>/videos/<video id>/` (result.json,
thumbnails, per-segment checkpoints, so a restarted request resumes). One video at a time: the model
is shared with images.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import queue
import tempfile
import threading
import uuid
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, status
from pydantic import BaseModel, Field

from gpu_app.deps import ServiceDep, require_api_key
from gpu_app.index.base import DEFAULT_COLLECTION
from gpu_app.schemas import INVALID, MALFORMED, NOT_FOUND, NOT_READY, UNAUTHORIZED, Collection
from gpu_app.service import FaceService
from gpu_app.storage.base import InvalidKeyError, ObjectNotFoundError, validate_key
from gpu_app.video.frames import VIDEO_SUFFIXES, VideoRejectedError
from gpu_app.video.pipeline import (
    RESULT_NAME,
    VideoSettings,
    failure_document,
    process_video,
    video_id,
    write_result,
)

log = logging.getLogger(__name__)

router = APIRouter(
    tags=["videos"],
    dependencies=[Depends(require_api_key)],
    responses=MALFORMED | UNAUTHORIZED | INVALID | NOT_FOUND | NOT_READY,
)

VideoStatus = Literal["queued", "running", "succeeded", "failed"]
REQUEST_NAME = "request.json"


class VideoRequest(BaseModel):
    key: Annotated[str, Field(min_length=1, max_length=1024, description="Video key in the app's storage")]
    collection: Collection = DEFAULT_COLLECTION
    sample_rate: Annotated[float, Field(gt=0, le=30, description="Frames analysed per second")] = 2.0


class VideoJobOut(BaseModel):
    video_job_id: str
    key: str
    status: VideoStatus
    result_prefix: str
    progress: dict[str, Any] = Field(default_factory=dict)
    error_type: str | None = None
    error: str | None = None
    result: dict[str, Any] | None = None


@dataclasses.dataclass
class VideoJob:
    video_job_id: str
    request: VideoRequest
    result_prefix: str
    status: VideoStatus = "queued"
    progress: dict[str, Any] = dataclasses.field(default_factory=dict)
    error_type: str | None = None
    error: str | None = None
    result: dict[str, Any] | None = None

    def out(self) -> VideoJobOut:
        return VideoJobOut(
            video_job_id=self.video_job_id,
            key=self.request.key,
            status=self.status,
            result_prefix=self.result_prefix,
            progress=dict(self.progress),
            error_type=self.error_type,
            error=self.error,
            result=self.result,
        )


class VideoWorker:
    """One thread working through queued videos in order."""

    def __init__(self, service: FaceService) -> None:
        self.service = service
        self.jobs: dict[str, VideoJob] = {}
        self._queue: queue.Queue[VideoJob] = queue.Queue()
        threading.Thread(target=self._run, name="video-worker", daemon=True).start()

    def prefix(self, key: str) -> str:
        # Under the upload path: the only prefix the instance role may write (terraform/modules/ec2_gpu).
        return f"{self.service.prefix}/videos/{video_id(key)}/"

    def submit(self, request: VideoRequest, video_job_id: str | None = None) -> VideoJob:
        """Queue the video; its request is stored first, so a restart before its result resumes it."""
        job = VideoJob(
            video_job_id=video_job_id or uuid.uuid4().hex,
            request=request,
            result_prefix=self.prefix(request.key),
        )
        if video_job_id is None:
            stored = {"video_job_id": job.video_job_id, **request.model_dump()}
            self.service.storage.put(
                job.result_prefix + REQUEST_NAME, json.dumps(stored).encode(), "application/json"
            )
        self.jobs[job.video_job_id] = job
        self._queue.put(job)
        return job

    def resume(self) -> int:
        """Queue again every stored request without a result (the instance stopped mid-video)."""
        resumed = 0
        for key in self.service.storage.list(f"{self.service.prefix}/videos/"):
            if not key.endswith("/" + REQUEST_NAME):
                continue
            folder = key[: -len(REQUEST_NAME)]
            try:
                self.service.storage.get(folder + RESULT_NAME)
                continue
            except ObjectNotFoundError:
                pass
            stored = json.loads(self.service.storage.get(key))
            video_job_id = stored.pop("video_job_id")
            self.submit(VideoRequest(**stored), video_job_id=video_job_id)
            log.info("resuming video %s (job %s) after a restart", stored["key"], video_job_id)
            resumed += 1
        return resumed

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            job.status = "running"
            try:
                job.result = self._process(job)
                job.status = "succeeded"
            except VideoRejectedError as error:
                job.status, job.error_type, job.error = "failed", error.error_type, error.reason
            except Exception as exc:  # a job's failure must never stop the worker
                log.exception("video %s failed", job.request.key)
                job.status, job.error_type, job.error = (
                    "failed",
                    "InternalError",
                    f"{type(exc).__name__}: {exc}",
                )

    def _process(self, job: VideoJob) -> dict[str, Any]:
        service = self.service
        service.activity.begin()  # the idle stopper must not stop the instance mid-video
        try:
            return self._process_busy(job)
        finally:
            service.activity.end()

    def _process_busy(self, job: VideoJob) -> dict[str, Any]:
        service = self.service
        try:
            data = service.storage.get(job.request.key)
        except ObjectNotFoundError:
            error = VideoRejectedError(f"no object {job.request.key!r} in the app's storage", "InputNotFound")
            write_result(service.storage, job.result_prefix, failure_document(job.request.key, error))
            raise error from None
        with tempfile.TemporaryDirectory(prefix="video-") as folder:
            path = Path(folder) / f"input{PurePosixPath(job.request.key).suffix.lower()}"
            path.write_bytes(data)
            return process_video(
                path,
                job.request.key,
                engine=service.engine,
                index=service.index,
                outputs=service.storage,
                output_prefix=job.result_prefix,
                settings=VideoSettings(
                    sample_rate=job.request.sample_rate, collection=job.request.collection
                ),
                progress=job.progress.update,
            )


_worker_lock = threading.Lock()


def _worker(app: FastAPI, service: FaceService) -> VideoWorker:
    with _worker_lock:
        worker: VideoWorker | None = getattr(app.state, "video_worker", None)
        if worker is None or worker.service is not service:
            worker = VideoWorker(service)
            app.state.video_worker = worker
        return worker


def video_worker(request: Request, service: ServiceDep) -> VideoWorker:
    """The app's video worker, started on first use (or by `resume_after_restart`)."""
    return _worker(request.app, service)


def resume_after_restart(app: FastAPI) -> None:
    """Once the model is loaded, queue again the videos accepted before a restart and not finished
    (a Spot interruption or a stop mid-video must not drop them). Its own thread: start-up goes on."""
    runtime = app.state.runtime

    def resume() -> None:
        if runtime.wait_ready() and runtime.service is not None:
            try:
                _worker(app, runtime.service).resume()
            except Exception:  # storage down: the videos stay stored, resumed at the next start
                log.exception("could not resume the interrupted videos")

    if runtime.wait_ready(timeout=0):  # loaded in the foreground (tests, CLI): resume before serving
        resume()
    else:
        threading.Thread(target=resume, name="video-resume", daemon=True).start()


WorkerDep = Annotated[VideoWorker, Depends(video_worker)]


@router.post(
    "/videos",
    response_model=VideoJobOut,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Find the face tracks of a stored video (asynchronous)",
)
async def submit_video(body: VideoRequest, worker: WorkerDep) -> VideoJobOut:
    try:
        validate_key(body.key)
    except InvalidKeyError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    if PurePosixPath(body.key).suffix.lower() not in VIDEO_SUFFIXES:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"{body.key!r} is not a video ({', '.join(VIDEO_SUFFIXES)})",
        )
    return worker.submit(body).out()


@router.get("/videos/{video_job_id}", response_model=VideoJobOut, summary="A video job's progress and result")
async def get_video(video_job_id: str, worker: WorkerDep) -> VideoJobOut:
    job = worker.jobs.get(video_job_id)
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no video job {video_job_id}")
    return job.out()
