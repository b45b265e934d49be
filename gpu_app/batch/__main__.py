"""`python -m gpu_app.batch embed | materialize | run-script | video | cleanup-cache`; flags default to
the environment.

Exit codes: 0 success; 1 failed work (see each command); 2 configuration error (the message says
what to set); 143 stopped by SIGTERM after a checkpoint (embed); run-script exits with the script's code.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from gpu_app.batch import EXIT_CONFIG, EXIT_FAILED, ConfigError
from gpu_app.batch.script_runner import DEFAULT_OUTPUT_DIR


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def _optional_int(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def cmd_embed(args: argparse.Namespace) -> int:
    from gpu_app.batch.embed import EmbedConfig, run_embed

    if args.array_index is None and args.array_size is not None:
        raise ConfigError("--array-size needs --array-index (AWS_BATCH_JOB_ARRAY_INDEX)")
    if args.array_index is not None and args.array_size is None:
        raise ConfigError("AWS_BATCH_JOB_ARRAY_INDEX is set without AWS_BATCH_JOB_ARRAY_SIZE (--array-size)")
    config = EmbedConfig(
        input_bucket=args.input_bucket or "",
        output_bucket=args.output_bucket or "",
        output_prefix=args.output_prefix or "",
        input_prefix=args.input_prefix,
        manifest_key=args.manifest_key or None,
        collection=args.collection,
        array_index=args.array_index or 0,
        array_size=args.array_size or 1,
        batch_size=args.batch_size,
        checkpoint_every=args.checkpoint_every,
        max_failed_fraction=args.max_failed_fraction,
        retries=args.retries,
        retry_backoff=args.retry_backoff,
        image_count=args.image_count,
        images_per_child=args.images_per_child,
    )
    return run_embed(config)


def cmd_materialize(args: argparse.Namespace) -> int:
    from gpu_app.batch.materialize import MaterializeConfig, run_materialize

    return run_materialize(
        MaterializeConfig(
            output_bucket=args.output_bucket or "",
            output_prefix=args.output_prefix or "",
            array_size=args.array_size,
            people_threshold=args.people_threshold,
            min_faces=args.min_faces,
        )
    )


def cmd_run_script(args: argparse.Namespace) -> int:
    from gpu_app.batch.script_runner import ScriptConfig, run_script

    config = ScriptConfig(
        script_key=args.script_key or "",
        input_bucket=args.input_bucket or "",
        output_bucket=args.output_bucket or "",
        output_prefix=args.output_prefix or "",
        output_dir=Path(args.output_dir),
        workspace=Path(args.workspace) if args.workspace else None,
    )
    return run_script(config)


def cmd_video(args: argparse.Namespace) -> int:
    from gpu_app.batch.video import VideoJobConfig, run_video

    return run_video(
        VideoJobConfig(
            input_bucket=args.input_bucket or "",
            output_bucket=args.output_bucket or "",
            output_prefix=args.output_prefix or "",
            video_key=args.video_key or "",
            sample_rate=args.sample_rate,
            segment_seconds=args.segment_seconds,
            max_seconds=args.max_seconds,
            collection=args.collection,
        )
    )


def cmd_cleanup_cache(args: argparse.Namespace) -> int:
    from gpu_app.batch.cache import cleanup_cache, human_bytes

    report = cleanup_cache(Path(args.cache_dir), dry_run=args.dry_run)
    verb = "would free" if args.dry_run else "freed"
    print(
        f"{verb} {human_bytes(report.bytes)} ({report.bytes} bytes, {report.files} files in "
        f"{report.entries} entries) in {report.directory}",
        flush=True,
    )
    for path, reason in report.errors.items():
        print(f"  could not remove {path}: {reason}", file=sys.stderr)
    return EXIT_FAILED if report.errors else 0


def _buckets(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input-bucket", default=_env("ML_INPUT_BUCKET"), help="env ML_INPUT_BUCKET")
    parser.add_argument("--output-bucket", default=_env("ML_OUTPUT_BUCKET"), help="env ML_OUTPUT_BUCKET")
    parser.add_argument(
        "--output-prefix", default=_env("OUTPUT_PREFIX"), help="env OUTPUT_PREFIX (outputs go under it)"
    )


def build_parser() -> argparse.ArgumentParser:
    """Built per call, so the defaults are the environment at that moment."""
    parser = argparse.ArgumentParser(prog="python -m gpu_app.batch", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    embed = sub.add_parser("embed", help="embed this array child's shard of images (see README.md)")
    _buckets(embed)
    embed.add_argument("--input-prefix", default=_env("INPUT_PREFIX"), help="env INPUT_PREFIX")
    embed.add_argument(
        "--manifest-key", default=_env("MANIFEST_KEY"), help="env MANIFEST_KEY (JSON lines or plain keys)"
    )
    embed.add_argument("--collection", default=_env("COLLECTION", "default"), help="env COLLECTION")
    embed.add_argument(
        "--array-index", type=int, default=_optional_int("AWS_BATCH_JOB_ARRAY_INDEX"), help="default: 0"
    )
    embed.add_argument(
        "--array-size", type=int, default=_optional_int("AWS_BATCH_JOB_ARRAY_SIZE"), help="default: 1"
    )
    embed.add_argument(
        "--batch-size",
        type=int,
        default=_env("BATCH_SIZE", "32"),
        help="images per model call (env BATCH_SIZE)",
    )
    embed.add_argument(
        "--checkpoint-every",
        type=int,
        default=_env("CHECKPOINT_EVERY", "100"),
        help="images between checkpoints, the most a kill can lose (env CHECKPOINT_EVERY)",
    )
    embed.add_argument(
        "--max-failed-fraction",
        type=float,
        default=_env("MAX_FAILED_FRACTION", "0.01"),
        help="bad images tolerated before the child exits 1 (env MAX_FAILED_FRACTION)",
    )
    embed.add_argument(
        "--retries",
        type=int,
        default=_env("CHUNK_RETRIES", "3"),
        help="retries of transient failures per chunk",
    )
    embed.add_argument(
        "--retry-backoff", type=float, default=_env("RETRY_BACKOFF", "2.0"), help="seconds, doubled per retry"
    )
    embed.add_argument(
        "--image-count", type=int, default=_optional_int("IMAGE_COUNT"), help=argparse.SUPPRESS
    )
    embed.add_argument(
        "--images-per-child", type=int, default=_optional_int("IMAGES_PER_CHILD"), help=argparse.SUPPRESS
    )
    embed.set_defaults(func=cmd_embed)

    final = sub.add_parser(
        "materialize", help="merge an embed job's shard results into final.parquet, with people"
    )
    _buckets(final)
    final.add_argument(
        "--array-size",
        type=int,
        default=_optional_int("ARRAY_SIZE"),
        help="shards the embed job had (env ARRAY_SIZE; default: as many as the outputs show)",
    )
    final.add_argument("--people-threshold", type=float, default=None, help="default: the pack's")
    final.add_argument("--min-faces", type=int, default=None, help="default: PEOPLE_MIN_FACES")
    final.set_defaults(func=cmd_materialize)

    script = sub.add_parser("run-script", help="run SCRIPT_KEY from the input bucket and upload its outputs")
    _buckets(script)
    script.add_argument("--script-key", default=_env("SCRIPT_KEY"), help="env SCRIPT_KEY (.py or .sh)")
    script.add_argument(
        "--output-dir",
        default=_env("OUTPUT_DIR", DEFAULT_OUTPUT_DIR),
        help="uploaded after the run (env OUTPUT_DIR)",
    )
    script.add_argument("--workspace", default=_env("WORKSPACE_DIR"), help="default: a new temporary folder")
    script.set_defaults(func=cmd_run_script)

    video = sub.add_parser("video", help="turn VIDEO_KEY into face tracks, resumable per segment")
    _buckets(video)
    video.add_argument("--video-key", default=_env("VIDEO_KEY"), help="env VIDEO_KEY")
    video.add_argument(
        "--sample-rate",
        type=float,
        default=_env("VIDEO_SAMPLE_RATE", "2"),
        help="frames/s (env VIDEO_SAMPLE_RATE)",
    )
    video.add_argument(
        "--segment-seconds",
        type=float,
        default=_env("VIDEO_SEGMENT_SECONDS", "60"),
        help="checkpoint every this many seconds of video (env VIDEO_SEGMENT_SECONDS)",
    )
    video.add_argument(
        "--max-seconds", type=float, default=_env("VIDEO_MAX_SECONDS", "14400"), help="env VIDEO_MAX_SECONDS"
    )
    video.add_argument("--collection", default=_env("COLLECTION", "default"), help="env COLLECTION")
    video.set_defaults(func=cmd_video)

    cache = sub.add_parser("cleanup-cache", help="empty the model cache directory")
    cache.add_argument(
        "--cache-dir",
        default=_env("MODEL_CACHE_DIR") or _env("MODEL_ROOT", "~/.insightface"),
        help="env MODEL_CACHE_DIR, else MODEL_ROOT",
    )
    cache.add_argument("--dry-run", action="store_true", help="only report what would be freed")
    cache.set_defaults(func=cmd_cleanup_cache)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Plain lines on stdout: Batch ships them to CloudWatch as they come.
    logging.basicConfig(
        stream=sys.stdout, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("botocore", "boto3", "s3transfer", "urllib3", "faiss.loader"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return EXIT_CONFIG


if __name__ == "__main__":
    sys.exit(main())
