"""The face pipeline: decode -> detect + embed (batched) -> store image and sidecar -> index.

HTTP routes, async jobs, the CLI and the Batch job all go through `FaceService`, so every entry
point stores, indexes and fails the same way.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from gpu_app.engine import DetectedFace, FaceEngine
from gpu_app.engine.base import ImageRejectedError
from gpu_app.engine.microbatch import MicroBatchingEngine
from gpu_app.imaging import DecodedImage, ImageDecodeError, decode_image
from gpu_app.index import (
    DEFAULT_COLLECTION,
    FaceRecord,
    IndexWriteError,
    SearchFilters,
    SearchHit,
    VectorIndex,
    VectorIndexError,
)
from gpu_app.memory import MemoryBudget, cap_malloc_arenas, map_large_buffers_alone
from gpu_app.metrics import Metrics
from gpu_app.people.directory import PeopleDirectory
from gpu_app.people.thumbnails import store_thumbnails, strip_of, thumbnail_key
from gpu_app.sidecar import Sidecar, SidecarFace
from gpu_app.storage import (
    SIDECAR_SUFFIX,
    ImageStorage,
    InvalidKeyError,
    ObjectNotFoundError,
    StorageError,
    sanitize_filename,
    validate_key,
)
from gpu_app.storage.base import image_folder, sidecar_key

log = logging.getLogger(__name__)

_IMAGE_ID = re.compile(r"[0-9a-f]{32}")
INTERNAL_ERROR = "internal error processing this file"
CONTENT_TYPES = {"JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
EXTENSIONS = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp"}


class FaceNotFoundError(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class FileError:
    status: int
    reason: str
    transient: bool = False  # storage/index unavailable: not the file's fault, retrying may succeed


@dataclass(slots=True)
class ImageOutcome:
    file: str
    image_id: str | None = None
    storage_key: str | None = None
    faces: list[SidecarFace] = field(default_factory=list)
    width: int | None = None
    height: int | None = None
    indexed: bool = False
    warning: str | None = None
    error: FileError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(slots=True)
class _Work:
    """One image moving through the pipeline."""

    name: str
    data: bytes | None = None
    source_key: str | None = None  # already in storage (/process); None for uploads
    decoded: DecodedImage | None = None
    outcome: ImageOutcome = field(init=False)

    def __post_init__(self) -> None:
        self.outcome = ImageOutcome(file=self.name)

    def fail(self, status: int, reason: str, *, transient: bool = False) -> None:
        self.outcome.error = FileError(status, reason, transient)


@dataclass(frozen=True, slots=True)
class QueryFace:
    bbox: tuple[float, float, float, float]
    det_score: float
    face_id: str | None
    matches: list[SearchHit]


class Activity:
    """Seconds since the last unit of work, and work in progress (the idle stopper reads both)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = time.monotonic()
        self._busy = 0

    def touch(self) -> None:
        with self._lock:
            self._last = time.monotonic()

    def begin(self) -> None:
        with self._lock:
            self._busy += 1
            self._last = time.monotonic()

    def end(self) -> None:
        with self._lock:
            self._busy -= 1
            self._last = time.monotonic()

    @property
    def in_progress(self) -> int:
        return self._busy

    @property
    def idle_seconds(self) -> float:
        with self._lock:
            return 0.0 if self._busy else time.monotonic() - self._last


def image_id_of(data: bytes, collection: str = DEFAULT_COLLECTION) -> str:
    """Content address within a collection: the same bytes are the same image wherever they come
    from, and the same bytes in two collections are two images (with their own faces), so adding
    to one collection never moves faces out of another. The default collection keeps the plain
    content hash of the images stored before collections took part in the id."""
    if collection == DEFAULT_COLLECTION:
        return hashlib.sha256(data).hexdigest()[:32]
    # Collection names have no NUL (see schemas.Collection): the prefix cannot be forged by data.
    return hashlib.sha256(collection.encode() + b"\0" + data).hexdigest()[:32]


def inference_failure(exc: Exception) -> tuple[int, str]:
    """Status and reason of a file the model failed on: its own fault (422), or the model's (500)."""
    if isinstance(exc, ImageRejectedError):
        return 422, str(exc)
    return 500, f"face model failed on this image: {type(exc).__name__}: {exc}"


def thumbnail_strip(decoded: DecodedImage, faces: Sequence[DetectedFace]) -> bytes | None:
    """The JPEG strip of the faces' thumbnails, cut from the pixels inference ran on; None when
    there is no face or the encoding failed (the strip is then made on request)."""
    if not faces:
        return None
    try:
        return strip_of(decoded, [face.bbox for face in faces])
    except Exception:  # best effort (cv2.error is no ValueError): never costs the image
        log.exception("face thumbnails not made (made on request instead)")
        return None


def ingest_workers(cuda: bool, cores: int | None = None) -> int:
    """Images in flight at once, each decoded, inferred and stored by one worker. On CPU half the
    cores, at least 2 (one image decodes or is stored while another is in the model, which runs on
    every core: more would only compete with it and hold more pixels); on CUDA the device works
    apart from the cores, so twice the cores, at least 8, to fill its rounds."""
    cores = cores or len(os.sched_getaffinity(0))
    return max(8, 2 * cores) if cuda else max(2, cores // 2)


def face_id_of(image_id: str, index: int) -> str:
    """Deterministic, so re-processing an image (a retried job) upserts instead of duplicating."""
    return f"{image_id}-{index:03d}"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class ServiceOptions:
    """The settings the pipeline reads; gpu_app/assembly.py makes them from `Settings`."""

    upload_prefix: str  # S3_UPLOAD_PATH: images, sidecars and thumbnails go under it
    max_upload_bytes: int
    max_image_pixels: int
    min_image_side: int
    det_size: int
    working_image_pixels: int
    decode_budget_bytes: int
    match_threshold: float  # the pack's effective MATCH_THRESHOLD
    face_thumbnails: bool
    # Where images waiting for an index retry are remembered across restarts; None: in memory only
    # (a Batch job retries its own failures, and its container's disk dies with it).
    pending_index_file: Path | None


class FaceService:
    def __init__(
        self,
        engine: FaceEngine,
        storage: ImageStorage,
        index: VectorIndex,
        people: PeopleDirectory,
        options: ServiceOptions,
        metrics: Metrics | None = None,
    ) -> None:
        self.options = options
        # One inference worker batching across callers (the app passes its own; the CLI and Batch
        # jobs get one here): images are submitted one by one as they decode.
        self.engine = engine if isinstance(engine, MicroBatchingEngine) else MicroBatchingEngine(engine)
        self._own_engine = self.engine is not engine
        # Decoded pixels held at once, by every request and job of this process together; and freed
        # pixels go back to the OS rather than to allocator heaps.
        self.decode_budget = MemoryBudget(options.decode_budget_bytes)
        map_large_buffers_alone()
        cap_malloc_arenas()
        self.storage = storage
        self.index = index
        self.people = people
        self.metrics = metrics or Metrics()
        self.engine.on_round = self.metrics.inference.observe  # detection + recognition per round
        self.activity = Activity()
        self.prefix = options.upload_prefix
        workers = ingest_workers(self.engine.info.cuda)
        self._decoder = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ingest")
        self._pending = PendingIndex(options.pending_index_file)
        self.metrics.index_pending.set(len(self._pending))

    @property
    def model_pack(self) -> str:
        return self.engine.info.model_pack

    def close(self) -> None:
        self._decoder.shutdown(wait=True)
        self.people.store.close()
        if self._own_engine:
            self.engine.close()

    def decode(self, data: bytes) -> DecodedImage:
        """Decode with this deployment's limits (MAX_IMAGE_PIXELS, MIN_IMAGE_SIDE, DET_SIZE), reduced
        to WORKING_IMAGE_PIXELS, waiting for room in DECODE_BUDGET_BYTES."""
        options = self.options
        return decode_image(
            data,
            max_pixels=options.max_image_pixels,
            min_side=options.min_image_side,
            det_size=options.det_size,
            working_pixels=options.working_image_pixels,
            budget=self.decode_budget,
        )

    # --- ingest ----------------------------------------------------------------------------
    def process_uploads(
        self, files: Sequence[tuple[str | None, bytes]], collection: str = DEFAULT_COLLECTION
    ) -> list[ImageOutcome]:
        work = [_Work(name=name or f"file{i}", data=data) for i, (name, data) in enumerate(files)]
        return self._run(work, collection)

    def process_keys(self, keys: Sequence[str], collection: str = DEFAULT_COLLECTION) -> list[ImageOutcome]:
        work = [_Work(name=key, source_key=key) for key in keys]
        return self._run(work, collection)

    def _run(self, work: list[_Work], collection: str) -> list[ImageOutcome]:
        self.activity.begin()
        try:
            created_at = now_iso()
            # Each image goes through decode, inference, thumbnails and storage on one worker:
            # the pixels of at most `ingest_workers` images are alive at once in the process, and
            # one image's decode and writes overlap another's inference. Index and people are then
            # written once for the whole request.
            stored = [
                item
                for item in self._decoder.map(lambda w: self._ingest_alone(w, collection, created_at), work)
                if item is not None
            ]
            if stored:
                self._index_sidecars(stored)
            for w in work:
                self.metrics.images.labels(status="ok" if w.outcome.ok else "error").inc()
            return [w.outcome for w in work]
        finally:
            self.activity.end()

    def _ingest_alone(self, w: _Work, collection: str, created_at: str) -> tuple[_Work, Sidecar, str] | None:
        """`_ingest`, where an unexpected error fails this image alone: the request's other images
        are still indexed (a stored one is recoverable by `reindex`; a retry upserts)."""
        try:
            return self._ingest(w, collection, created_at)
        except Exception:
            log.exception("ingest of %s failed", w.name)
            w.fail(500, INTERNAL_ERROR)  # the details are in the log, not for the client
            return None

    def _ingest(self, w: _Work, collection: str, created_at: str) -> tuple[_Work, Sidecar, str] | None:
        """Decode, infer, cut the thumbnails while the pixels are there, release them, store."""
        self._load_and_decode(w)
        decoded = w.decoded
        if decoded is None:
            return None
        w.decoded = decoded.without_pixels()
        result = self.engine.submit([decoded.bgr]).result()[0]
        if isinstance(result, Exception):  # this image alone failed in the model
            w.fail(*inference_failure(result))
            return None
        faces = [face.scaled(*decoded.scale) for face in result]
        strip = thumbnail_strip(decoded, faces) if self.options.face_thumbnails else None
        del decoded  # the pixels (and their share of the decode budget) go now
        return self._store(w, faces, strip, collection, created_at)

    def _load_and_decode(self, w: _Work) -> None:
        if w.source_key is not None:
            try:
                w.data = self.storage.get(validate_key(w.source_key))
            except InvalidKeyError as exc:
                return w.fail(400, str(exc))
            except ObjectNotFoundError:
                return w.fail(404, f"no object {w.source_key!r} in {self.storage.uri(w.source_key)}")
            except StorageError as exc:
                return w.fail(503, f"storage unavailable, retry later: {exc}", transient=True)
        assert w.data is not None
        if len(w.data) > self.options.max_upload_bytes:
            return w.fail(
                413, f"file is {len(w.data)} bytes, above MAX_UPLOAD_BYTES={self.options.max_upload_bytes}"
            )
        try:
            w.decoded = self.decode(w.data)
        except ImageDecodeError as exc:
            w.fail(exc.status, exc.reason)
        return None

    def _store(
        self,
        w: _Work,
        faces: list[DetectedFace],
        strip: bytes | None,
        collection: str,
        created_at: str,
    ) -> tuple[_Work, Sidecar, str] | None:
        """Write the image (an upload), its sidecar and its thumbnails; None if storage failed."""
        assert w.data is not None and w.decoded is not None
        image_id = image_id_of(w.data, collection)
        fmt = w.decoded.format
        name = sanitize_filename(w.source_key or w.name)
        if w.source_key is None and not name.lower().endswith(EXTENSIONS.get(fmt, "\0")):
            name += EXTENSIONS.get(fmt, "")
        key = w.source_key or f"{image_folder(self.prefix, image_id)}{name}"
        sidecar = Sidecar(
            image_id=image_id,
            storage_key=key,
            original_name=w.name,
            model_pack=self.model_pack,
            embedding_dim=self.engine.info.embedding_dim,
            width=w.decoded.width,
            height=w.decoded.height,
            format=fmt,
            collection=collection,
            created_at=created_at,
            faces=tuple(
                SidecarFace(
                    face_id=face_id_of(image_id, i),
                    bbox=face.bbox,
                    landmarks=face.landmarks,
                    det_score=face.det_score,
                    embedding=tuple(face.embedding.tolist()),  # exact: float32 -> double
                )
                for i, face in enumerate(faces)
            ),
        )
        sidecar_at = sidecar_key(self.prefix, image_id, name)
        try:
            if w.source_key is None:
                self.storage.put(key, w.data, CONTENT_TYPES.get(fmt, "application/octet-stream"))
            self.storage.put(sidecar_at, sidecar.to_json(), "application/json")
        except StorageError as exc:
            w.fail(503, f"storage unavailable, nothing was kept; retry later: {exc}", transient=True)
            return None
        w.outcome.image_id, w.outcome.storage_key = image_id, key
        w.outcome.faces, w.outcome.width, w.outcome.height = (
            list(sidecar.faces),
            sidecar.width,
            sidecar.height,
        )
        self.metrics.faces.inc(len(faces))
        if strip is not None:  # done when the request is: a face listed has its thumbnail
            store_thumbnails(self, image_id, strip)
        return w, sidecar, sidecar_at

    def _index_sidecars(self, stored: list[tuple[_Work, Sidecar, str]]) -> None:
        """Index every stored image; one whose vectors fail stays recoverable (pending + sidecar)."""
        records = [record for _, sidecar, _ in stored for record in sidecar.records()]
        failures: dict[str, str] = {}
        try:
            self.index.add(records)
        except IndexWriteError as exc:
            failures = exc.failures
        except VectorIndexError as exc:
            failures = {r.face_id: str(exc) for r in records}
        for w, sidecar, sidecar_at in stored:
            reasons = [failures[f.face_id] for f in sidecar.faces if f.face_id in failures]
            if reasons:
                w.outcome.warning = (
                    f"image stored but {len(reasons)} vector(s) not indexed yet ({reasons[0]}); "
                    "they are retried in the background and recoverable with `python -m gpu_app reindex`"
                )
                self._pending.add(sidecar.image_id, sidecar_at)
            else:
                w.outcome.indexed = True
        self.metrics.index_pending.set(len(self._pending))
        self.cluster_people([r for r in records if r.face_id not in failures])

    def cluster_people(self, records: Sequence[FaceRecord]) -> None:
        """Place indexed faces into people. A failure here never fails the ingest: the faces are
        stored and indexed, and `python -m gpu_app people recluster` places them later."""
        try:
            self.people.cluster_new(records)
        except Exception:
            log.exception("clustering %d face(s) into people failed; recluster later", len(records))

    def retry_pending_index(self) -> int:
        """Re-index images whose vectors could not be written earlier; returns how many succeeded."""
        done = 0
        for image_id, key in self._pending.items():
            try:
                records = Sidecar.from_json(self.storage.get(key)).records()
                self.index.add(records)
                self.cluster_people(records)
            except ObjectNotFoundError:
                pass  # deleted meanwhile: nothing left to index
            except (VectorIndexError, StorageError) as exc:
                log.warning("index retry of %s failed again: %s", image_id, exc)
                continue
            self._pending.discard(image_id)
            done += 1
        self.metrics.index_pending.set(len(self._pending))
        return done

    @property
    def pending_index(self) -> int:
        return len(self._pending)

    # --- search ----------------------------------------------------------------------------
    def search_image(
        self,
        data: bytes,
        *,
        k: int,
        threshold: float | None,
        mode: Literal["all", "largest"] = "all",
        filters: SearchFilters | None = None,
    ) -> list[QueryFace]:
        self.activity.begin()
        try:
            faces = self.detect_faces(data)
            if mode == "largest" and faces:
                faces = [max(faces, key=lambda f: f.area)]
            return [
                QueryFace(
                    face.bbox, face.det_score, None, self._search(face.embedding, k, threshold, filters)
                )
                for face in faces
            ]
        finally:
            self.activity.end()

    def detect_faces(self, data: bytes) -> list[DetectedFace]:
        """The faces of one image (boxes in its original pixels), without storing anything.
        Raises ImageDecodeError for an image that cannot be decoded or is refused by the model."""
        decoded = self.decode(data)
        result = self.engine.analyze_each([decoded.bgr])[0]
        scale, decoded = decoded.scale, decoded.without_pixels()
        if isinstance(result, ImageRejectedError):
            raise ImageDecodeError(str(result))
        if isinstance(result, Exception):
            raise result
        return [face.scaled(*scale) for face in result]

    def search_face(
        self, face_id: str, *, k: int, threshold: float | None, filters: SearchFilters | None = None
    ) -> QueryFace:
        self.activity.touch()
        record = self.index.get(face_id)
        if record is None:
            raise FaceNotFoundError(face_id)
        # One more than asked: the face itself is always its own best match and is left out.
        hits = [h for h in self._search(record.embedding, k + 1, threshold, filters) if h.face_id != face_id]
        return QueryFace(record.bbox, record.det_score, face_id, hits[:k])

    def search_person(
        self, person_id: str, *, k: int, threshold: float | None, filters: SearchFilters | None = None
    ) -> QueryFace:
        """Faces like the person's (the mean of their faces), their own included."""
        self.activity.touch()
        person = self.people.get(person_id)
        query = self.people.centroid(person_id)  # PeopleConflictError when the person has no face
        representative = self.get_face(person.representative_face_id or "")
        hits = self._search(query, k, threshold, filters)
        return QueryFace(representative.bbox, representative.det_score, representative.face_id, hits)

    def _search(
        self, vector: np.ndarray, k: int, threshold: float | None, filters: SearchFilters | None
    ) -> list[SearchHit]:
        limit = self.options.match_threshold if threshold is None else threshold
        scoped = SearchFilters(
            collection=filters.collection if filters else None,
            image_id=filters.image_id if filters else None,
            model_pack=self.model_pack,
        )
        return self.index.search(vector, k, limit, scoped)

    # --- lookup and delete -----------------------------------------------------------------
    def get_face(self, face_id: str) -> FaceRecord:
        record = self.index.get(face_id)
        if record is None:
            raise FaceNotFoundError(face_id)
        return record

    def image_sidecars(self, image_id: str) -> list[tuple[str, Sidecar]]:
        """The image's sidecars, by id: one listing of the image's own folder (a key derived from
        the id), never of the whole store. Several only when the same bytes came under several names.
        Raises StorageError when storage is down (the API answers 503)."""
        if not _IMAGE_ID.fullmatch(image_id):
            return []
        folder = image_folder(self.prefix, image_id)
        keys = [k for k in self.storage.list(folder) if k.endswith(SIDECAR_SUFFIX)]
        found = []
        for key in keys:
            try:
                found.append((key, Sidecar.from_json(self.storage.get(key))))
            except ObjectNotFoundError:
                continue  # deleted between the listing and the read
        return found

    def delete_image(self, image_id: str) -> dict[str, Any] | None:
        """Remove the image's vectors, its sidecars and the copies this service stored in the
        image's folder. A key sent to /process stays: it is the caller's object, and the same
        object may back the image in other collections."""
        sidecars = self.image_sidecars(image_id)
        removed_vectors = self.index.delete_image(image_id)
        if not sidecars and not removed_vectors:
            return None
        folder = image_folder(self.prefix, image_id)
        stored_copies = sorted({s.storage_key for _, s in sidecars if s.storage_key.startswith(folder)})
        # The thumbnails' key follows from the id (no second listing); deleting an absent one is a
        # no-op, and it goes before the sidecars, so an interrupted delete is completed by a retry.
        thumbnails = [thumbnail_key(self.prefix, image_id)]
        for key in [*stored_copies, *thumbnails, *(k for k, _ in sidecars)]:
            self.storage.delete(key)
        self._pending.discard(image_id)
        self.people.forget_faces([f.face_id for _, s in sidecars for f in s.faces])
        return {
            "image_id": image_id,
            "deleted_objects": stored_copies + [k for k, _ in sidecars],
            "deleted_vectors": removed_vectors,
        }


class PendingIndex:
    """Images whose vectors wait for an index retry, persisted so a restart does not forget them."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._items: dict[str, str] = {}
        if path is not None:
            with contextlib.suppress(OSError, ValueError):
                self._items = json.loads(path.read_text())

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._items.items())

    def add(self, image_id: str, key: str) -> None:
        with self._lock:
            self._items[image_id] = key
            self._save()

    def discard(self, image_id: str) -> None:
        with self._lock:
            if self._items.pop(image_id, None) is not None:
                self._save()

    def _save(self) -> None:
        if self._path is None:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._items))
        tmp.replace(self._path)
