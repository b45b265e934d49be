"""One inference worker per model: requests queue up and share recognition batches.

Concurrent callers (HTTP requests, async jobs) each hand their decoded images to the worker. It
takes everything waiting, detects face by face as before, then embeds the aligned faces of *all*
waiting callers in one recognition call. On a GPU that is what keeps the device busy; on a CPU it
costs nothing and keeps exactly one inference in flight, so onnxruntime's threads never compete.

Items stay isolated: an image the model fails on fails alone (its caller gets the error in that
image's slot), and if a shared round fails as a whole, each image is run again alone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from queue import Empty, SimpleQueue

import numpy as np

from gpu_app.engine.base import DetectedFace, EngineInfo, FaceEngine, ImageFaces, each_alone, first_failure

_MAX_IMAGES_PER_ROUND = 64  # bounds one round's latency and memory


@dataclass(slots=True)
class _Request:
    images: Sequence[np.ndarray]
    future: Future[list[ImageFaces]] = field(default_factory=Future)


class MicroBatchingEngine:
    """A FaceEngine whose `analyze` is served by a single worker thread with cross-call batching."""

    def __init__(self, engine: FaceEngine) -> None:
        self._engine = engine
        self.info: EngineInfo = engine.info
        self._queue: SimpleQueue[_Request | None] = SimpleQueue()
        self._worker = threading.Thread(target=self._run, name="inference", daemon=True)
        self._worker.start()
        self.rounds = 0  # inference rounds served (each = one recognition batch)
        self.on_round: Callable[[float], None] | None = None  # seconds of each round (a metric)

    @property
    def inner(self) -> FaceEngine:
        """The engine the worker runs."""
        return self._engine

    @property
    def waiting(self) -> int:
        """Requests queued for the next round."""
        return self._queue.qsize()

    def submit(self, images: Sequence[np.ndarray]) -> Future[list[ImageFaces]]:
        """Queue images for the next round; the future holds one result (or exception) per image."""
        request = _Request(images)
        if not images:
            request.future.set_result([])
        else:
            self._queue.put(request)
        return request.future

    def analyze_each(self, images: Sequence[np.ndarray]) -> list[ImageFaces]:
        return self.submit(images).result()

    def analyze(self, images: Sequence[np.ndarray]) -> list[list[DetectedFace]]:
        return first_failure(self.analyze_each(images))

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
            del first
            self._serve(requests)
            del requests  # the round's pixels go now, not when the next round starts
            if stop:
                return

    def _serve(self, requests: list[_Request]) -> None:
        images = [image for request in requests for image in request.images]
        started = time.perf_counter()
        try:
            results = each_alone(self._engine.analyze_each, images)
        except BaseException as exc:
            for request in requests:
                request.images = ()
                request.future.set_exception(exc)
            return
        finally:
            del images
        self.rounds += 1
        if self.on_round is not None:
            self.on_round(time.perf_counter() - started)
        offset = 0
        for request in requests:
            count = len(request.images)
            request.images = ()  # decoded pixels are released (and their memory budget with them)
            request.future.set_result(results[offset : offset + count])
            offset += count
