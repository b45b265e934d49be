"""Face tracks: detections of consecutive sampled frames linked by box overlap plus embedding
similarity; a face that leaves and comes back joins its track again by similarity alone."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Final

import cv2
import numpy as np

from gpu_app.engine.base import DetectedFace

# Same person in the next sampled frame: boxes overlap and the faces look alike; after an absence
# (or a cut) similarity alone decides, so it must be stricter.
MIN_IOU: Final = 0.3
MIN_SIMILARITY_NEAR: Final = 0.35
MIN_SIMILARITY_FAR: Final = 0.5


@dataclasses.dataclass(frozen=True)
class Sighting:
    """One face in one sampled frame."""

    frame_index: int
    timestamp: float
    face: DetectedFace
    quality: float


@dataclasses.dataclass
class Track:
    track_id: int
    sightings: list[Sighting] = dataclasses.field(default_factory=list)
    embedding_sum: np.ndarray | None = None

    def add(self, sighting: Sighting) -> None:
        self.sightings.append(sighting)
        vector = sighting.face.embedding.astype(np.float32)
        self.embedding_sum = vector.copy() if self.embedding_sum is None else self.embedding_sum + vector

    @property
    def embedding(self) -> np.ndarray:
        """The mean embedding, L2-normalised (cosine = inner product, as the index expects)."""
        assert self.embedding_sum is not None
        norm = float(np.linalg.norm(self.embedding_sum))
        return (self.embedding_sum / norm if norm else self.embedding_sum).astype(np.float32)

    @property
    def last(self) -> Sighting:
        return self.sightings[-1]

    @property
    def best(self) -> Sighting:
        return max(self.sightings, key=lambda sighting: sighting.quality)

    def time_ranges(self, max_gap: float) -> list[tuple[float, float]]:
        """[start, end] seconds of each stretch without a gap longer than `max_gap`."""
        ranges: list[list[float]] = []
        for sighting in self.sightings:
            if ranges and sighting.timestamp - ranges[-1][1] <= max_gap:
                ranges[-1][1] = sighting.timestamp
            else:
                ranges.append([sighting.timestamp, sighting.timestamp])
        return [(round(start, 3), round(end, 3)) for start, end in ranges]


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def quality(face: DetectedFace, image: np.ndarray) -> float:
    """Largest, sharpest, most frontal: area x sharpness (Laplacian variance, capped) x frontality
    (the nose centred between the eyes), all in comparable units."""
    x1, y1, x2, y2 = (round(v) for v in face.bbox)
    height, width = image.shape[:2]
    crop = image[max(0, y1) : min(height, y2), max(0, x1) : min(width, x2)]
    if crop.size == 0:
        return 0.0
    sharpness = min(
        1.0, float(cv2.Laplacian(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var()) / 500.0
    )
    (left_eye, right_eye, nose, *_rest) = face.landmarks
    eye_span = abs(right_eye[0] - left_eye[0]) or 1.0
    centre = (left_eye[0] + right_eye[0]) / 2
    frontality = max(0.0, 1.0 - abs(nose[0] - centre) / (eye_span / 2))
    return float(face.area) * (0.2 + 0.8 * sharpness) * (0.2 + 0.8 * frontality)


def link(
    frames: Sequence[tuple[int, float, Sequence[tuple[DetectedFace, float]]]], max_gap: float
) -> list[Track]:
    """Tracks from (frame index, timestamp, [(face, quality)]) in time order.

    A face continues a track last seen within `max_gap` seconds if the boxes overlap and the faces
    are alike, else the most similar earlier track if similar enough, else it starts a new track.
    Each track takes at most one face per frame (greedy, best score first).
    """
    tracks: list[Track] = []
    for frame_index, timestamp, faces in frames:
        candidates: list[tuple[float, int, int]] = []
        for face_number, (face, _quality) in enumerate(faces):
            for track_number, track in enumerate(tracks):
                similarity = float(np.dot(face.embedding, track.embedding))
                recent = timestamp - track.last.timestamp <= max_gap
                overlap = iou(face.bbox, track.last.face.bbox) if recent else 0.0
                if overlap >= MIN_IOU and similarity >= MIN_SIMILARITY_NEAR:
                    candidates.append((1.0 + overlap + similarity, face_number, track_number))
                elif similarity >= MIN_SIMILARITY_FAR:
                    candidates.append((similarity, face_number, track_number))
        taken_faces: set[int] = set()
        taken_tracks: set[int] = set()
        for _score, face_number, track_number in sorted(candidates, reverse=True):
            if face_number in taken_faces or track_number in taken_tracks:
                continue
            face, face_quality = faces[face_number]
            tracks[track_number].add(Sighting(frame_index, timestamp, face, face_quality))
            taken_faces.add(face_number)
            taken_tracks.add(track_number)
        for face_number, (face, face_quality) in enumerate(faces):
            if face_number not in taken_faces:
                track = Track(track_id=len(tracks))
                track.add(Sighting(frame_index, timestamp, face, face_quality))
                tracks.append(track)
                taken_tracks.add(track.track_id)
    return tracks
