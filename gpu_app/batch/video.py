"""`python -m gpu_app.batch video`: one video (VIDEO_KEY in the input bucket) becomes face tracks.

Outputs under OUTPUT_PREFIX in the output bucket: `segments/NNNNN.json` (a checkpoint per finished
segment: a Spot reclaim, which Batch retries, resumes after the last one), `thumbnails/track-N.jpg`
and `result.json` (also written, with `status: failed` and the reason, for a video that cannot be
processed). One index entry per track. Exit codes: 0 done; 1 the video was refused (the reason is in
result.json and the log; Batch does not retry it); 2 configuration error.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from pathlib import Path, PurePosixPath

from gpu_app.batch import EXIT_FAILED, EXIT_OK, ConfigError, require, require_collection
from gpu_app.config import Settings
from gpu_app.index.base import DEFAULT_COLLECTION

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class VideoJobConfig:
    input_bucket: str
    output_bucket: str
    output_prefix: str
    video_key: str
    sample_rate: float = 2.0
    segment_seconds: float = 60.0
    max_seconds: float = 4 * 3600.0
    collection: str = DEFAULT_COLLECTION

    def validate(self) -> None:
        require(
            [
                ("ML_INPUT_BUCKET", "--input-bucket", self.input_bucket),
                ("ML_OUTPUT_BUCKET", "--output-bucket", self.output_bucket),
                ("OUTPUT_PREFIX", "--output-prefix", self.output_prefix),
                ("VIDEO_KEY", "--video-key", self.video_key),
            ]
        )
        if self.sample_rate <= 0 or self.segment_seconds <= 0 or self.max_seconds <= 0:
            raise ConfigError(
                "VIDEO_SAMPLE_RATE, VIDEO_SEGMENT_SECONDS and VIDEO_MAX_SECONDS must be positive"
            )
        require_collection(self.collection)


def run_video(config: VideoJobConfig, settings: Settings) -> int:
    """Download, process (resuming from checkpoints) and report one video; returns the exit code."""
    import boto3

    from gpu_app.assembly import gpu_problem, open_index
    from gpu_app.engine import load_engine
    from gpu_app.index import IndexMismatchError
    from gpu_app.storage.s3 import S3Storage
    from gpu_app.video.frames import VideoRejectedError
    from gpu_app.video.pipeline import VideoSettings, process_video

    config.validate()
    settings = settings.model_copy(update={"storage_backend": "s3", "s3_bucket_name": config.input_bucket})
    prefix = config.output_prefix if config.output_prefix.endswith("/") else config.output_prefix + "/"
    outputs = S3Storage(config.output_bucket, region=settings.aws_region, retries=settings.storage_retries)
    engine = load_engine(settings)
    problem = gpu_problem(settings, engine.info)
    if problem:
        raise ConfigError(problem)
    try:
        index = open_index(settings, engine.info)
    except IndexMismatchError as exc:
        raise ConfigError(str(exc)) from None
    options = VideoSettings(
        sample_rate=config.sample_rate,
        max_seconds=config.max_seconds,
        segment_seconds=config.segment_seconds,
        collection=config.collection,
    )
    with tempfile.TemporaryDirectory(prefix="video-") as folder:
        # The suffix tells the decoder the container; the download streams to disk, not memory.
        path = Path(folder) / f"input{PurePosixPath(config.video_key).suffix.lower()}"
        boto3.client("s3", region_name=settings.aws_region).download_file(
            config.input_bucket, config.video_key, str(path)
        )
        try:
            result = process_video(
                path,
                config.video_key,
                engine=engine,
                index=index,
                outputs=outputs,
                output_prefix=prefix,
                settings=options,
                progress=lambda state: log.info("progress %s", state),
            )
        except VideoRejectedError as error:
            log.error("video %s refused (%s): %s", config.video_key, error.error_type, error.reason)
            return EXIT_FAILED
        finally:
            index.close()
    log.info(
        "video %s: %d tracks from %d sampled frames (%d segments resumed)",
        config.video_key,
        len(result["tracks"]),
        result["frames_sampled"],
        result["segments_resumed"],
    )
    return EXIT_OK
