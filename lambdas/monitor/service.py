"""Batch job state changes as readable notifications (e-mail subject and body)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from lambdas.common.aws import region
from lambdas.common.log import logger
from lambdas.common.notify import publish
from lambdas.common.validation import escape_unprintable
from lambdas.monitor.config import MonitorConfig
from lambdas.monitor.events import BatchJobStateChange

FINAL_STATUSES: Final = frozenset({"SUCCEEDED", "FAILED"})


def _time(epoch_ms: int | None) -> str:
    if epoch_ms is None:
        return "-"
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(start_ms: int | None, stop_ms: int | None) -> str:
    if start_ms is None or stop_ms is None:
        return "-"
    seconds = max(stop_ms - start_ms, 0) // 1000
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m {seconds % 60:02d}s"


def subject(change: BatchJobStateChange) -> str:
    return f"[{change.status}] Batch job {change.job_name}"


def body(change: BatchJobStateChange) -> str:
    env = change.environment
    queue_name = change.job_queue.rsplit("/", 1)[-1]
    lines = [
        f"AWS Batch job {change.job_name} {change.status}.",
        "",
        f"Job name:      {change.job_name}",
        f"Job id:        {change.job_id}",
        f"Queue:         {queue_name} ({change.job_queue})",
        f"Status:        {change.status}",
        f"Status reason: {change.status_reason or '-'}",
        f"Attempts:      {len(change.attempts)}",
    ]
    for number, attempt in enumerate(change.attempts, start=1):
        lines.append(
            f"  {number}. exit code {attempt.exit_code if attempt.exit_code is not None else '-'}"
            f", {attempt.reason or 'no reason given'}, log stream {attempt.log_stream_name or '-'}"
        )
    if change.array_size:
        lines.append(f"Array size:    {change.array_size}")
    lines += [
        f"Log stream:    {change.log_stream_name or '-'}",
        f"Started:       {_time(change.started_at)}",
        f"Stopped:       {_time(change.stopped_at)}",
        f"Duration:      {_duration(change.started_at, change.stopped_at)}",
        "",
        "Triggered by",
        f"  User:        {env.get('TRIGGER_USER', '-')}",
        f"  Project:     {env.get('TRIGGER_PROJECT', '-')}",
        f"  Experiment:  {env.get('TRIGGER_EXPERIMENT', '-')}",
    ]
    if "SCRIPT_KEY" in env:
        lines.append(f"Script:        s3://{env.get('ML_INPUT_BUCKET', '?')}/{env['SCRIPT_KEY']}")
    if "VIDEO_KEY" in env:
        lines.append(f"Video:         s3://{env.get('ML_INPUT_BUCKET', '?')}/{env['VIDEO_KEY']}")
    if "OUTPUT_PREFIX" in env:
        lines.append(f"Output:        s3://{env.get('ML_OUTPUT_BUCKET', '?')}/{env['OUTPUT_PREFIX']}")
    if "VIDEO_KEY" in env and "OUTPUT_PREFIX" in env:
        # A refused video (corrupt, too long, no faces) says why there; the exit code only says "1".
        lines.append(
            f"Result:        s3://{env.get('ML_OUTPUT_BUCKET', '?')}/{env['OUTPUT_PREFIX']}result.json "
            "(status, error_type, reason, tracks)"
        )
    lines += [
        "",
        f"Console: https://{region()}.console.aws.amazon.com/batch/home?region={region()}#jobs/detail/{change.job_id}",
    ]
    # Job names, reasons and the sender's metadata end up here: a line break or separator in them
    # must not start a forged line of the e-mail, so each line is escaped before the join.
    return "\n".join(escape_unprintable(line) for line in lines) + "\n"


def notify_state_change(event: Mapping[str, Any], config: MonitorConfig) -> dict[str, Any]:
    """Publish one notification per finished job; other states and array children are skipped."""
    change = BatchJobStateChange.from_detail(event.get("detail") or {})
    logger.append_keys(job_id=change.job_id, job_name=change.job_name, job_status=change.status)
    if change.status not in FINAL_STATUSES:
        logger.info("state not notified")
        return {"published": False, "reason": f"status {change.status or '?'} is not final"}
    if change.array_index is not None:
        # The parent's own event reports the array as a whole; one mail per child would flood.
        logger.info("array child not notified")
        return {"published": False, "reason": "array child"}
    message_id = publish(
        config.notifications_topic_arn,
        subject(change),
        body(change),
        {"status": change.status, "job_queue": change.job_queue.rsplit("/", 1)[-1]},
    )
    logger.info("job state notified", extra={"notification_id": message_id})
    return {"published": True, "message_id": message_id, "job_id": change.job_id, "status": change.status}
