"""A video becomes face tracks: sampled frames analysed in batches by the engine, one segment at a
time with a checkpoint per finished segment (a resumed run skips those), then tracks linked, a
thumbnail per track, one index entry per track and a result document.

Index entries of a video: `image_id` is `video-<digest of the key>`, `storage_key` is the video key
followed by `#t=` and the track's time ranges (Media Fragments' `start,end` in seconds, ranges
separated by `;`), so a search hit names the video and when that person appears in it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import cv2
import numpy as np

from gpu_app.engine.base import DetectedFace, FaceEngine
from gpu_app.index.base import DEFAULT_COLLECTION, FaceRecord, VectorIndex
from gpu_app.storage.base import ImageStorage, ObjectNotFoundError
from gpu_app.video.frames import SampledFrame, VideoRejectedError, probe, sample_frames
from gpu_app.video.tracks import Track, link, quality

log = logging.getLogger(__name__)

RESULT_NAME: Final = "result.json"
FrameFaces = tuple[int, float, list[tuple[DetectedFace, float]]]
Progress = Callable[[dict[str, Any]], None]


@dataclasses.dataclass(frozen=True)
class VideoSettings:
    sample_rate: float = 2.0  # frames per second, plus scene cuts
    max_seconds: float = 4 * 3600.0
    batch_size: int = 16
    segment_seconds: float = 60.0  # checkpoint granularity
    collection: str = DEFAULT_COLLECTION

    @property
    def max_gap(self) -> float:
        """A track absent for more than this (two and a half sampling intervals) starts a new time range."""
        return 2.5 / self.sample_rate


def video_id(video_key: str) -> str:
    return "video-" + hashlib.sha256(video_key.encode("utf-8")).hexdigest()[:24]


def _batches(frames: Iterator[SampledFrame], size: int) -> Iterator[list[SampledFrame]]:
    batch: list[SampledFrame] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def analyse_segment(
    path: Path, engine: FaceEngine, settings: VideoSettings, start: float, end: float
) -> tuple[list[FrameFaces], int]:
    """Faces of every sampled frame in [start, end); also the number of scene-cut samples."""
    frames: list[FrameFaces] = []
    cuts = 0
    for batch in _batches(
        sample_frames(path, rate=settings.sample_rate, start=start, end=end), settings.batch_size
    ):
        for frame, faces in zip(batch, engine.analyze_each([frame.image for frame in batch]), strict=True):
            cuts += frame.reason == "scene_cut"
            if isinstance(faces, Exception):  # one bad frame fails alone
                log.warning("frame %d at %.2fs not analysed: %s", frame.index, frame.timestamp, faces)
                faces = []
            frames.append(
                (frame.index, frame.timestamp, [(face, quality(face, frame.image)) for face in faces])
            )
    return frames, cuts


def _face_json(face: DetectedFace, face_quality: float) -> dict[str, Any]:
    return {
        "bbox": [float(v) for v in face.bbox],
        "landmarks": [[float(x), float(y)] for x, y in face.landmarks],
        "det_score": float(face.det_score),
        "embedding": face.embedding.astype(float).tolist(),
        "quality": face_quality,
    }


def _face_from_json(item: dict[str, Any]) -> tuple[DetectedFace, float]:
    face = DetectedFace(
        bbox=tuple(item["bbox"]),
        landmarks=tuple(tuple(point) for point in item["landmarks"]),
        det_score=float(item["det_score"]),
        embedding=np.asarray(item["embedding"], dtype=np.float32),
    )
    return face, float(item["quality"])


def segment_json(frames: Sequence[FrameFaces], cuts: int) -> bytes:
    body = {
        "scene_cuts": cuts,
        "frames": [
            {"index": index, "timestamp": timestamp, "faces": [_face_json(face, q) for face, q in faces]}
            for index, timestamp, faces in frames
        ],
    }
    return json.dumps(body).encode("utf-8")


def segment_from_json(data: bytes) -> tuple[list[FrameFaces], int]:
    body = json.loads(data)
    frames = [
        (int(item["index"]), float(item["timestamp"]), [_face_from_json(face) for face in item["faces"]])
        for item in body["frames"]
    ]
    return frames, int(body["scene_cuts"])


def thumbnail(path: Path, frame_index: int, bbox: Sequence[float]) -> bytes:
    """The face's crop (with a margin) from that frame, as JPEG."""
    capture = cv2.VideoCapture(str(path))
    try:
        capture.set(cv2.CAP_PROP_POS_FRAMES, frame_index)
        ok, image = capture.read()
    finally:
        capture.release()
    if not ok:
        return b""
    x1, y1, x2, y2 = bbox
    margin_x, margin_y = (x2 - x1) * 0.2, (y2 - y1) * 0.2
    height, width = image.shape[:2]
    crop = image[
        max(0, int(y1 - margin_y)) : min(height, int(y2 + margin_y)),
        max(0, int(x1 - margin_x)) : min(width, int(x2 + margin_x)),
    ]
    ok, encoded = cv2.imencode(".jpg", crop)
    return encoded.tobytes() if ok and crop.size else b""


def storage_key_with_times(video_key: str, ranges: Sequence[tuple[float, float]]) -> str:
    return f"{video_key}#t=" + ";".join(f"{start:g},{end:g}" for start, end in ranges)


def track_record(video_key: str, track: Track, settings: VideoSettings, model_pack: str) -> FaceRecord:
    best = track.best
    return FaceRecord(
        face_id=f"{video_id(video_key)}-track-{track.track_id}",
        image_id=video_id(video_key),
        storage_key=storage_key_with_times(video_key, track.time_ranges(settings.max_gap)),
        model_pack=model_pack,
        det_score=float(best.face.det_score),
        bbox=tuple(float(v) for v in best.face.bbox),  # type: ignore[arg-type]
        embedding=track.embedding,
        collection=settings.collection,
    )


def failure_document(video_key: str, error: VideoRejectedError) -> dict[str, Any]:
    return {
        "video_key": video_key,
        "status": "failed",
        "error_type": error.error_type,
        "reason": error.reason,
        "tracks": [],
    }


def write_result(outputs: ImageStorage, output_prefix: str, document: dict[str, Any]) -> None:
    outputs.put(output_prefix + RESULT_NAME, json.dumps(document).encode("utf-8"), "application/json")


def process_video(
    path: Path,
    video_key: str,
    *,
    engine: FaceEngine,
    index: VectorIndex,
    outputs: ImageStorage,
    output_prefix: str,
    settings: VideoSettings,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Process the video, writing under `output_prefix`: `segments/NNNNN.json` (checkpoints),
    `thumbnails/track-N.jpg` and `result.json`; returns the result document.

    A rejected video (VideoRejectedError: empty, corrupt, too long, no faces) gets a failed result
    document too, then the error is raised for the caller's exit code or job status.
    """
    started = time.monotonic()
    try:
        info = probe(path, settings.max_seconds)
    except VideoRejectedError as error:
        write_result(outputs, output_prefix, failure_document(video_key, error))
        raise
    segments = max(1, int(np.ceil(info.duration / settings.segment_seconds)))
    frames: list[FrameFaces] = []
    cuts = resumed = 0
    for number in range(segments):
        key = f"{output_prefix}segments/{number:05d}.json"
        try:
            segment, segment_cuts = segment_from_json(outputs.get(key))
            resumed += 1
        except ObjectNotFoundError:
            start = number * settings.segment_seconds
            segment, segment_cuts = analyse_segment(
                path, engine, settings, start, start + settings.segment_seconds
            )
            outputs.put(key, segment_json(segment, segment_cuts), "application/json")
        frames.extend(segment)
        cuts += segment_cuts
        if progress is not None:
            progress({"segments_done": number + 1, "segments": segments, "frames_sampled": len(frames)})
    tracks = link(frames, settings.max_gap)
    if not tracks:
        no_faces = VideoRejectedError(f"no faces found in {len(frames)} sampled frames", "NoFaces")
        write_result(outputs, output_prefix, failure_document(video_key, no_faces))
        raise no_faces
    documents = []
    for track in tracks:
        best = track.best
        thumbnail_key = f"{output_prefix}thumbnails/track-{track.track_id}.jpg"
        outputs.put(thumbnail_key, thumbnail(path, best.frame_index, best.face.bbox), "image/jpeg")
        ranges = track.time_ranges(settings.max_gap)
        documents.append(
            {
                "track_id": track.track_id,
                "face_id": f"{video_id(video_key)}-track-{track.track_id}",
                "first_seen": ranges[0][0],
                "last_seen": ranges[-1][1],
                "time_ranges": [list(item) for item in ranges],
                "sightings": len(track.sightings),
                "best_face": {
                    "timestamp": best.timestamp,
                    "bbox": [float(v) for v in best.face.bbox],
                    "det_score": float(best.face.det_score),
                },
                "thumbnail_key": thumbnail_key,
            }
        )
    index.add([track_record(video_key, track, settings, engine.info.model_pack) for track in tracks])
    document = {
        "video_key": video_key,
        "video_id": video_id(video_key),
        "status": "succeeded",
        "duration": round(info.duration, 3),
        "fps": info.fps,
        "frames_sampled": len(frames),
        "scene_cuts": cuts,
        "segments": segments,
        "segments_resumed": resumed,
        "model_pack": engine.info.model_pack,
        "collection": settings.collection,
        "tracks": documents,
        "seconds": round(time.monotonic() - started, 3),
    }
    write_result(outputs, output_prefix, document)
    return document
