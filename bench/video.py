"""Item 8: videos. Processing speed (decode, sample 2 frames/s plus cuts, detect+embed, link tracks)
against the floor of decoding the same file and nothing else, in video frames per second; and the
reduction from frames decoded to frames sampled to tracks indexed.

The clip is generated from the sample photo (tests/support/videos.py): 640x360 at 25 fps, two faces
of t1.jpg, one leaving and coming back.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from bench.core import (
    HEADINGS,
    Options,
    Ratio,
    SectionResult,
    Table,
    fmt,
    interleave,
    log,
    model_pack,
    per_round,
)


def make_clip(folder: Path, seconds: float) -> Path:
    from tests.support.images import sample_path
    from tests.support.videos import face_crops, write_clip

    boxes = [(745, 342, 847, 480), (463, 266, 572, 415)]  # two faces of t1.jpg (the model finds them there)
    crops = face_crops(boxes)
    half = seconds / 2
    spans_a = [(0.0, half * 0.6), (half * 0.9, seconds)]
    spans_b = [(half * 0.3, seconds)]
    assert sample_path().exists()
    return write_clip(
        folder / "bench.mp4",
        [(crops[0], spans_a), (crops[1], spans_b)],
        seconds=seconds,
        fps=25.0,
        size=(640, 360),
    )


def run(options: Options) -> list[SectionResult]:
    from gpu_app.engine.insightface_engine import InsightFaceEngine
    from gpu_app.index.embedded import EmbeddedIndex
    from gpu_app.storage.local import LocalStorage
    from gpu_app.video.frames import decode_only
    from gpu_app.video.pipeline import VideoSettings, process_video

    root, pack = model_pack()
    engine = InsightFaceEngine(model_root=root, model_pack=pack, provider_preference="cpu")
    seconds = options.pick(20.0, 6.0)
    rounds = options.pick(3, 2)
    with tempfile.TemporaryDirectory(prefix="bench-video-") as tmp:
        folder = Path(tmp)
        clip = make_clip(folder, seconds)
        frames = decode_only(clip)
        last: dict[str, object] = {}

        def decode_arm() -> float:
            import time

            started = time.perf_counter()
            decode_only(clip)
            return time.perf_counter() - started

        def process_arm() -> float:
            import time

            run_dir = Path(tempfile.mkdtemp(dir=folder))
            index = EmbeddedIndex(run_dir / "index")
            index.open(engine.info.embedding_dim, engine.info.model_pack)
            started = time.perf_counter()
            last["result"] = process_video(
                clip,
                "incoming/bench.mp4",
                engine=engine,
                index=index,
                outputs=LocalStorage(run_dir / "out"),
                output_prefix="videos/bench/",
                settings=VideoSettings(),
            )
            elapsed = time.perf_counter() - started
            index.close()
            return elapsed

        times = interleave({"decode only": decode_arm, "process": process_arm}, rounds)
    result = last["result"]
    assert isinstance(result, dict)
    decode_fps = [frames / t for t in times["decode only"]]
    process_fps = [frames / t for t in times["process"]]
    sampled, tracks = int(result["frames_sampled"]), max(1, len(result["tracks"]))
    log(f"video: {frames} frames, {result['frames_sampled']} sampled, {len(result['tracks'])} tracks")
    return [
        SectionResult(
            key="video",
            heading=HEADINGS["video"],
            ratios=[
                Ratio(
                    "video processing vs decode-only",
                    per_round(process_fps, decode_fps),
                    "video frames per second processed (2 samples/s + cuts analysed) over frames per second "
                    "only decoded, same file; 1.0 would mean the model costs nothing",
                ),
            ],
            tables=[
                Table(
                    "One clip",
                    [
                        "frames decoded",
                        "frames sampled",
                        "scene cuts",
                        "tracks indexed",
                        "decode fps",
                        "process fps",
                    ],
                    [
                        [
                            str(frames),
                            str(result["frames_sampled"]),
                            str(result["scene_cuts"]),
                            str(len(result["tracks"])),
                            fmt(float(np.median(decode_fps)), 0),
                            fmt(float(np.median(process_fps)), 0),
                        ]
                    ],
                )
            ],
            notes=[
                f"{seconds:.0f} s clip, 640x360 at 25 fps (mp4v), generated from t1.jpg; "
                f"model pack {pack} on CPU.",
                f"frames sampled per track indexed: {sampled / tracks:.1f}; "
                f"index entries per decoded frame: {tracks / frames:.4f}.",
            ],
            numbers={
                "frames": float(frames),
                "frames_sampled": float(result["frames_sampled"]),
                "tracks": float(len(result["tracks"])),
                "decode_fps": float(np.median(decode_fps)),
                "process_fps": float(np.median(process_fps)),
            },
        )
    ]
