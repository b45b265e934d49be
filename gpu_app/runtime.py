"""Everything the app holds while it runs: settings, the loaded model, storage, index, workers.

Loading happens on a background thread, so /health answers "starting" while a model pack loads
(or downloads) and the instance controller can wait for /ready.
"""

from __future__ import annotations

import logging
import threading
from typing import Literal, NamedTuple

from gpu_app.assembly import build_service, gpu_problem
from gpu_app.config import Settings
from gpu_app.engine import FaceEngine, load_engine
from gpu_app.engine.microbatch import MicroBatchingEngine
from gpu_app.index import VectorIndex
from gpu_app.metrics import Metrics
from gpu_app.secret_store import TERRAFORM_PLACEHOLDER_PREFIX as TERRAFORM_PLACEHOLDER_PREFIX  # re-exported
from gpu_app.secret_store import RotatingApiKey
from gpu_app.service import FaceService
from gpu_app.storage import ImageStorage
from gpu_app.upload_jobs import UploadJobQueue

log = logging.getLogger(__name__)

State = Literal["starting", "ready", "failed", "stopped"]
_INDEX_RETRY_SECONDS = 30.0
# Multipart headers and boundaries per file part; the JSON cap of /process beyond its keys.
_MULTIPART_PART_OVERHEAD = 16 * 1024
_JSON_BODY_BASE = 64 * 1024


class BodyLimits(NamedTuple):
    upload: int
    search: int
    json: int


class Runtime:
    def __init__(
        self,
        settings: Settings,
        *,
        engine: FaceEngine | None = None,
        storage: ImageStorage | None = None,
        index: VectorIndex | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.state: State = "starting"
        self.error: str | None = None
        self.service: FaceService | None = None
        self.jobs: UploadJobQueue | None = None
        self._engine, self._storage, self._index = engine, storage, index
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._retry_thread: threading.Thread | None = None
        self._batching: MicroBatchingEngine | None = None
        # Fail at start, not on the first request: a missing secret is a deployment error.
        self._rotating_key = (
            RotatingApiKey(
                settings.api_key_ssm_parameter, settings.aws_region, settings.api_key_refresh_seconds
            )
            if settings.api_key is None and settings.api_key_ssm_parameter
            else None
        )

    @property
    def api_key(self) -> str | None:
        """The key every protected route requires (None: none configured); a key from SSM is re-read
        every API_KEY_REFRESH_SECONDS, so a rotation needs no restart (gpu_app/secret_store.py)."""
        if self.settings.api_key is not None:
            return self.settings.api_key.get_secret_value()
        return self._rotating_key.current if self._rotating_key is not None else None

    def start(self, background: bool = True) -> None:
        if background:
            threading.Thread(target=self._load, name="model-loader", daemon=True).start()
        else:
            self._load()

    def wait_ready(self, timeout: float | None = None) -> bool:
        self._ready.wait(timeout)
        return self.state == "ready"

    def _load(self) -> None:
        try:
            # One inference worker per model for the whole server: concurrent requests share batches.
            engine = MicroBatchingEngine(self._engine or load_engine(self.settings))
            self._batching = engine
            self.service = build_service(
                self.settings, engine=engine, storage=self._storage, index=self._index, metrics=self.metrics
            )
            self.jobs = UploadJobQueue(
                self.service,
                workers=self.settings.job_workers,
                queue_size=self.settings.job_queue_size,
                spool_dir=self.settings.job_spool_dir,
                retry_delay=self.settings.job_retry_delay,
                retry_max_delay=self.settings.job_retry_max_delay,
            )
            if not self._stopping.is_set():  # stop() ran while loading: start no workers behind it
                self.jobs.start()
            self._retry_thread = threading.Thread(target=self._retry_pending, name="index-retry", daemon=True)
            self._retry_thread.start()
            self.state = "ready"
            log.info("ready: %s", engine.info)
        except Exception as exc:  # any failure is reported by /health and /ready, not a crash loop
            log.exception("startup failed")
            self.state, self.error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            self._ready.set()

    def _retry_pending(self) -> None:
        while not self._stopping.wait(_INDEX_RETRY_SECONDS):
            if self.service is not None and self.service.pending_index:
                self.service.retry_pending_index()

    @property
    def body_limits(self) -> BodyLimits:
        """Body caps in bytes: every upload the file limits admit fits its cap, a search carries one
        file, and JSON holds MAX_FILES_PER_REQUEST keys of 1,024 characters, each \\uXXXX-escaped."""
        settings = self.settings
        per_file = settings.max_upload_bytes + _MULTIPART_PART_OVERHEAD
        return BodyLimits(
            upload=settings.max_request_bytes or settings.max_files_per_request * per_file,
            search=per_file,
            json=_JSON_BODY_BASE + settings.max_files_per_request * 6 * 1024,
        )

    def not_ready_reasons(self, *, detailed: bool = True) -> list[str]:
        """Why the service takes no work. Not `detailed`: a startup error may name paths or hosts,
        so the open endpoints say only that it failed."""
        if self.state == "starting":
            return ["model is loading"]
        if self.state != "ready" or self.service is None:
            if not detailed and self.state == "failed":
                return ["startup failed; details at /health?verbose=true with the API key"]
            return [self.error or f"state is {self.state}"]
        problem = gpu_problem(self.settings, self.service.engine.info)
        return [problem] if problem else []

    def stop(self) -> None:
        self._stopping.set()
        if self.jobs is not None:
            self.jobs.stop()
        if self.service is not None:
            self.service.close()
            self.service.index.close()
        if self._batching is not None:
            self._batching.close()
        self.state = "stopped"
