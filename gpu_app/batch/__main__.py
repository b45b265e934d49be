"""`python -m gpu_app.batch embed | materialize | run-script | video | cleanup-cache`; a flag overrides
the setting of the same meaning (gpu_app/config.py `BatchJobSettings`, from the environment).

Exit codes: 0 success; 1 failed work (see each command); 2 configuration error (the message says
what to set); 143 stopped by SIGTERM after a checkpoint (embed); run-script exits with the script's code.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, TypeVar

from gpu_app.batch import EXIT_CONFIG, EXIT_FAILED, ConfigError
from gpu_app.config import Settings

T = TypeVar("T")


def _given(flag: T | None, setting: T) -> T:
    """The flag's value when it was given, else the setting's."""
    return setting if flag is None else flag


def _buckets(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    return {
        "input_bucket": _given(args.input_bucket, settings.ml_input_bucket) or "",
        "output_bucket": _given(args.output_bucket, settings.ml_output_bucket) or "",
        "output_prefix": _given(args.output_prefix, settings.output_prefix) or "",
    }


def cmd_embed(args: argparse.Namespace, settings: Settings) -> int:
    from gpu_app.batch.embed import EmbedConfig, run_embed

    array_index = _given(args.array_index, settings.aws_batch_job_array_index)
    array_size = _given(args.array_size, settings.aws_batch_job_array_size)
    if array_index is None and array_size is not None:
        raise ConfigError("--array-size needs --array-index (AWS_BATCH_JOB_ARRAY_INDEX)")
    if array_index is not None and array_size is None:
        raise ConfigError("AWS_BATCH_JOB_ARRAY_INDEX is set without AWS_BATCH_JOB_ARRAY_SIZE (--array-size)")
    config = EmbedConfig(
        **_buckets(args, settings),
        input_prefix=_given(args.input_prefix, settings.input_prefix),
        manifest_key=_given(args.manifest_key, settings.manifest_key) or None,
        collection=_given(args.collection, settings.collection),
        array_index=array_index or 0,
        array_size=array_size or 1,
        batch_size=_given(args.batch_size, settings.batch_size),
        checkpoint_every=_given(args.checkpoint_every, settings.checkpoint_every),
        max_failed_fraction=_given(args.max_failed_fraction, settings.max_failed_fraction),
        retries=_given(args.retries, settings.chunk_retries),
        retry_backoff=_given(args.retry_backoff, settings.retry_backoff),
        image_count=settings.image_count,
        images_per_child=settings.images_per_child,
        job_id=settings.aws_batch_job_id,
        job_attempt=settings.aws_batch_job_attempt,
    )
    return run_embed(config, settings)


def cmd_materialize(args: argparse.Namespace, settings: Settings) -> int:
    from gpu_app.batch.materialize import MaterializeConfig, run_materialize

    buckets = _buckets(args, settings)
    return run_materialize(
        MaterializeConfig(
            output_bucket=buckets["output_bucket"],
            output_prefix=buckets["output_prefix"],
            array_size=_given(args.array_size, settings.array_size),
            people_threshold=args.people_threshold,
            min_faces=args.min_faces,
        ),
        settings,
    )


def cmd_run_script(args: argparse.Namespace, settings: Settings) -> int:
    from gpu_app.batch.script_runner import ScriptConfig, run_script

    workspace = _given(args.workspace, settings.workspace_dir)
    config = ScriptConfig(
        **_buckets(args, settings),
        script_key=_given(args.script_key, settings.script_key) or "",
        output_dir=Path(_given(args.output_dir, settings.output_dir)),
        workspace=Path(workspace) if workspace else None,
        job_id=settings.aws_batch_job_id,
        job_attempt=settings.aws_batch_job_attempt,
    )
    return run_script(config)


def cmd_video(args: argparse.Namespace, settings: Settings) -> int:
    from gpu_app.batch.video import VideoJobConfig, run_video

    return run_video(
        VideoJobConfig(
            **_buckets(args, settings),
            video_key=_given(args.video_key, settings.video_key) or "",
            sample_rate=_given(args.sample_rate, settings.video_sample_rate),
            segment_seconds=_given(args.segment_seconds, settings.video_segment_seconds),
            max_seconds=_given(args.max_seconds, settings.video_max_seconds),
            collection=_given(args.collection, settings.collection),
        ),
        settings,
    )


def cmd_cleanup_cache(args: argparse.Namespace, settings: Settings) -> int:
    from gpu_app.batch.cache import cleanup_cache, human_bytes

    cache_dir = _given(args.cache_dir, settings.model_cache_dir or Path(settings.model_root))
    report = cleanup_cache(Path(cache_dir), dry_run=args.dry_run)
    verb = "would free" if args.dry_run else "freed"
    print(
        f"{verb} {human_bytes(report.bytes)} ({report.bytes} bytes, {report.files} files in "
        f"{report.entries} entries) in {report.directory}",
        flush=True,
    )
    for path, reason in report.errors.items():
        print(f"  could not remove {path}: {reason}", file=sys.stderr)
    return EXIT_FAILED if report.errors else 0


def _bucket_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input-bucket", help="env ML_INPUT_BUCKET")
    parser.add_argument("--output-bucket", help="env ML_OUTPUT_BUCKET")
    parser.add_argument("--output-prefix", help="env OUTPUT_PREFIX (outputs go under it)")


def build_parser() -> argparse.ArgumentParser:
    """Flags default to None: a flag given wins over the setting (main() loads the settings)."""
    parser = argparse.ArgumentParser(prog="python -m gpu_app.batch", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    embed = sub.add_parser("embed", help="embed this array child's shard of images (see README.md)")
    _bucket_flags(embed)
    embed.add_argument("--input-prefix", help="env INPUT_PREFIX")
    embed.add_argument("--manifest-key", help="env MANIFEST_KEY (JSON lines or plain keys)")
    embed.add_argument("--collection", help="env COLLECTION (default: default)")
    embed.add_argument("--array-index", type=int, help="env AWS_BATCH_JOB_ARRAY_INDEX (default: 0)")
    embed.add_argument("--array-size", type=int, help="env AWS_BATCH_JOB_ARRAY_SIZE (default: 1)")
    embed.add_argument("--batch-size", type=int, help="images per model call (env BATCH_SIZE)")
    embed.add_argument(
        "--checkpoint-every",
        type=int,
        help="images between checkpoints, the most a kill can lose (env CHECKPOINT_EVERY)",
    )
    embed.add_argument(
        "--max-failed-fraction",
        type=float,
        help="bad images tolerated before the child exits 1 (env MAX_FAILED_FRACTION)",
    )
    embed.add_argument("--retries", type=int, help="retries of transient failures (env CHUNK_RETRIES)")
    embed.add_argument("--retry-backoff", type=float, help="seconds, doubled per retry (env RETRY_BACKOFF)")
    embed.set_defaults(func=cmd_embed)

    final = sub.add_parser(
        "materialize", help="merge an embed job's shard results into final.parquet, with people"
    )
    _bucket_flags(final)
    final.add_argument(
        "--array-size",
        type=int,
        help="shards the embed job had (env ARRAY_SIZE; default: as many as the outputs show)",
    )
    final.add_argument("--people-threshold", type=float, default=None, help="default: the pack's")
    final.add_argument("--min-faces", type=int, default=None, help="default: PEOPLE_MIN_FACES")
    final.set_defaults(func=cmd_materialize)

    script = sub.add_parser("run-script", help="run SCRIPT_KEY from the input bucket and upload its outputs")
    _bucket_flags(script)
    script.add_argument("--script-key", help="env SCRIPT_KEY (.py or .sh)")
    script.add_argument("--output-dir", help="uploaded after the run (env OUTPUT_DIR)")
    script.add_argument("--workspace", help="env WORKSPACE_DIR (default: a new temporary folder)")
    script.set_defaults(func=cmd_run_script)

    video = sub.add_parser("video", help="turn VIDEO_KEY into face tracks, resumable per segment")
    _bucket_flags(video)
    video.add_argument("--video-key", help="env VIDEO_KEY")
    video.add_argument("--sample-rate", type=float, help="frames/s (env VIDEO_SAMPLE_RATE)")
    video.add_argument(
        "--segment-seconds",
        type=float,
        help="checkpoint every this many seconds of video (env VIDEO_SEGMENT_SECONDS)",
    )
    video.add_argument("--max-seconds", type=float, help="env VIDEO_MAX_SECONDS")
    video.add_argument("--collection", help="env COLLECTION (default: default)")
    video.set_defaults(func=cmd_video)

    cache = sub.add_parser("cleanup-cache", help="empty the model cache directory")
    cache.add_argument("--cache-dir", help="env MODEL_CACHE_DIR, else MODEL_ROOT")
    cache.add_argument("--dry-run", action="store_true", help="only report what would be freed")
    cache.set_defaults(func=cmd_cleanup_cache)
    return parser


def load_settings() -> Settings:
    """The settings from the environment; a bad value is a configuration error (exit 2)."""
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(f"invalid settings in the environment: {exc}") from None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Plain lines on stdout: Batch ships them to CloudWatch as they come.
    logging.basicConfig(
        stream=sys.stdout, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("botocore", "boto3", "s3transfer", "urllib3", "faiss.loader"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return int(args.func(args, load_settings()))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return EXIT_CONFIG


if __name__ == "__main__":
    sys.exit(main())
