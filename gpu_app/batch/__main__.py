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
from typing import Any

from gpu_app.batch import EXIT_CONFIG, EXIT_FAILED, ConfigError
from gpu_app.config import Settings

# Each subcommand's default under this name maps a flag's dest to its Settings field (see `_flag`).
FALLBACKS = "fallbacks"


def cmd_embed(args: argparse.Namespace, settings: Settings) -> int:
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
        job_id=settings.aws_batch_job_id,
        job_attempt=settings.aws_batch_job_attempt,
    )
    return run_embed(config, settings)


def cmd_materialize(args: argparse.Namespace, settings: Settings) -> int:
    from gpu_app.batch.materialize import MaterializeConfig, run_materialize

    config = MaterializeConfig(
        output_bucket=args.output_bucket or "",
        output_prefix=args.output_prefix or "",
        array_size=args.array_size,
        people_threshold=args.people_threshold,
        min_faces=args.min_faces,
    )
    return run_materialize(config, settings)


def cmd_run_script(args: argparse.Namespace, settings: Settings) -> int:
    from gpu_app.batch.script_runner import ScriptConfig, run_script

    config = ScriptConfig(
        script_key=args.script_key or "",
        input_bucket=args.input_bucket or "",
        output_bucket=args.output_bucket or "",
        output_prefix=args.output_prefix or "",
        output_dir=Path(args.output_dir),
        workspace=Path(args.workspace) if args.workspace else None,
        job_id=settings.aws_batch_job_id,
        job_attempt=settings.aws_batch_job_attempt,
    )
    return run_script(config)


def cmd_video(args: argparse.Namespace, settings: Settings) -> int:
    from gpu_app.batch.video import VideoJobConfig, run_video

    config = VideoJobConfig(
        input_bucket=args.input_bucket or "",
        output_bucket=args.output_bucket or "",
        output_prefix=args.output_prefix or "",
        video_key=args.video_key or "",
        sample_rate=args.sample_rate,
        segment_seconds=args.segment_seconds,
        max_seconds=args.max_seconds,
        collection=args.collection,
    )
    return run_video(config, settings)


def cmd_cleanup_cache(args: argparse.Namespace, settings: Settings) -> int:
    from gpu_app.batch.cache import cleanup_cache, human_bytes

    report = cleanup_cache(Path(args.cache_dir or settings.model_root), dry_run=args.dry_run)
    verb = "would free" if args.dry_run else "freed"
    print(
        f"{verb} {human_bytes(report.bytes)} ({report.bytes} bytes, {report.files} files in "
        f"{report.entries} entries) in {report.directory}",
        flush=True,
    )
    for path, reason in report.errors.items():
        print(f"  could not remove {path}: {reason}", file=sys.stderr)
    return EXIT_FAILED if report.errors else 0


def _flag(parser: argparse.ArgumentParser, flag: str, setting: str, help: str, **kwargs: Any) -> None:
    """A flag that falls back to the Settings field `setting` (variable SETTING) when not given."""
    shown = help if help == argparse.SUPPRESS else f"{help} (env {setting.upper()})"
    action = parser.add_argument(flag, help=shown, **kwargs)
    parser.set_defaults(**{FALLBACKS: {**(parser.get_default(FALLBACKS) or {}), action.dest: setting}})


def _bucket_flags(parser: argparse.ArgumentParser) -> None:
    _flag(parser, "--input-bucket", "ml_input_bucket", "images, manifests, scripts, videos")
    _flag(parser, "--output-bucket", "ml_output_bucket", "the job's outputs")
    _flag(parser, "--output-prefix", "output_prefix", "outputs go under it")


def build_parser() -> argparse.ArgumentParser:
    """Flags default to None: `with_settings` gives each one not given its setting's value."""
    parser = argparse.ArgumentParser(prog="python -m gpu_app.batch", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    embed = sub.add_parser("embed", help="embed this array child's shard of images (see README.md)")
    _bucket_flags(embed)
    _flag(embed, "--input-prefix", "input_prefix", "every image under it")
    _flag(embed, "--manifest-key", "manifest_key", "or the images of a manifest (JSON lines or plain keys)")
    _flag(embed, "--collection", "collection", "collection of the indexed faces")
    _flag(embed, "--array-index", "aws_batch_job_array_index", "this child (default 0)", type=int)
    _flag(embed, "--array-size", "aws_batch_job_array_size", "the children (default 1)", type=int)
    _flag(embed, "--batch-size", "batch_size", "images per model call", type=int)
    _flag(embed, "--checkpoint-every", "checkpoint_every", "images between checkpoints", type=int)
    _flag(embed, "--max-failed-fraction", "max_failed_fraction", "bad images tolerated", type=float)
    _flag(embed, "--retries", "chunk_retries", "retries of transient failures per chunk", type=int)
    _flag(embed, "--retry-backoff", "retry_backoff", "seconds, doubled per retry", type=float)
    _flag(embed, "--image-count", "image_count", argparse.SUPPRESS, type=int)
    _flag(embed, "--images-per-child", "images_per_child", argparse.SUPPRESS, type=int)
    embed.set_defaults(func=cmd_embed)

    final = sub.add_parser(
        "materialize", help="merge an embed job's shard results into final.parquet, with people"
    )
    _bucket_flags(final)
    _flag(final, "--array-size", "array_size", "shards the embed job had (default: as found)", type=int)
    final.add_argument("--people-threshold", type=float, default=None, help="default: the pack's")
    final.add_argument("--min-faces", type=int, default=None, help="default: PEOPLE_MIN_FACES")
    final.set_defaults(func=cmd_materialize)

    script = sub.add_parser("run-script", help="run SCRIPT_KEY from the input bucket and upload its outputs")
    _bucket_flags(script)
    _flag(script, "--script-key", "script_key", ".py or .sh in the input bucket")
    _flag(script, "--output-dir", "output_dir", "uploaded after the run")
    _flag(script, "--workspace", "workspace_dir", "working directory (default: a new temporary folder)")
    script.set_defaults(func=cmd_run_script)

    video = sub.add_parser("video", help="turn VIDEO_KEY into face tracks, resumable per segment")
    _bucket_flags(video)
    _flag(video, "--video-key", "video_key", "the video in the input bucket")
    _flag(video, "--sample-rate", "video_sample_rate", "frames per second analysed", type=float)
    _flag(video, "--segment-seconds", "video_segment_seconds", "seconds per checkpoint", type=float)
    _flag(video, "--max-seconds", "video_max_seconds", "longest video accepted", type=float)
    _flag(video, "--collection", "collection", "collection of the indexed tracks")
    video.set_defaults(func=cmd_video)

    cache = sub.add_parser("cleanup-cache", help="empty the model cache directory")
    _flag(cache, "--cache-dir", "model_cache_dir", "the folder emptied (default: MODEL_ROOT)")
    cache.add_argument("--dry-run", action="store_true", help="only report what would be freed")
    cache.set_defaults(func=cmd_cleanup_cache)
    return parser


def with_settings(args: argparse.Namespace, settings: Settings) -> argparse.Namespace:
    """The command's arguments as the job runs with them: each flag not given takes its setting."""
    resolved = argparse.Namespace(**vars(args))
    for dest, setting in getattr(args, FALLBACKS, {}).items():
        if getattr(args, dest) is None:
            setattr(resolved, dest, getattr(settings, setting))
    return resolved


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
        settings = load_settings()
        return int(args.func(with_settings(args, settings), settings))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return EXIT_CONFIG


if __name__ == "__main__":
    sys.exit(main())
