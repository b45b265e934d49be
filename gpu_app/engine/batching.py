"""One inference worker per model: requests queue up and share recognition batches.

Concurrent callers (HTTP requests, async jobs) each hand their decoded images to the worker. It
takes everything waiting, detects face by face as before, then embeds the aligned faces of *all*
waiting callers in one recognition call. On a GPU that is what keeps the device busy; on a CPU it
costs nothing and keeps exactly one inference in flight, so onnxruntime's threads never compete.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from queue import Empty, SimpleQueue

import numpy as np

from gpu_app.engine.base import DetectedFace, EngineInfo, FaceEngine

_MAX_IMAGES_PER_ROUND = 64  # bounds one round's latency and memory


@dataclass(slots=True)
class _Request:
    images: Sequence[np.ndarray]
    future: Future[list[list[DetectedFace]]] = field(default_factory=Future)


class BatchingEngine:
    """A FaceEngine whose `analyze` is served by a single worker thread with cross-call batching."""

    def __init__(self, engine: FaceEngine) -> None:
        self._engine = engine
        self.info: EngineInfo = engine.info
        self._queue: SimpleQueue[_Request | None] = SimpleQueue()
        self._worker = threading.Thread(target=self._run, name="inference", daemon=True)
        self._worker.start()
        self.rounds = 0  # inference rounds served (each = one recognition batch)

    def analyze(self, images: Sequence[np.ndarray]) -> list[list[DetectedFace]]:
        if not images:
            return []
        request = _Request(images)
        self._queue.put(request)
        return request.future.result()

    def close(self) -> None:
        self._queue.put(None)
        self._worker.join(timeout=30)

    def _take_waiting(self, first: _Request) -> tuple[list[_Request], bool]:
        taken, count, stop = [first], len(first.images), False
        while count < _MAX_IMAGES_PER_ROUND:
            try:
                request = self._queue.get_nowait()
            except Empty:
                break
            if request is None:
                stop = True
                break
            taken.append(request)
            count += len(request.images)
        return taken, stop

    def _run(self) -> None:
        while (first := self._queue.get()) is not None:
            requests, stop = self._take_waiting(first)
            self._serve(requests)
            if stop:
                return

    def _serve(self, requests: list[_Request]) -> None:
        images = [image for request in requests for image in request.images]
        try:
            results = self._engine.analyze(images)
        except BaseException as exc:  # every waiting caller learns of the failure
            for request in requests:
                request.future.set_exception(exc)
            return
        self.rounds += 1
        offset = 0
        for request in requests:
            request.future.set_result(results[offset : offset + len(request.images)])
            offset += len(request.images)
