"""The EventBridge "Batch Job State Change" event the monitor reads, typed (monitor only)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple


class JobAttempt(NamedTuple):
    exit_code: int | None
    reason: str
    log_stream_name: str
    started_at: int | None
    stopped_at: int | None


class BatchJobStateChange(NamedTuple):
    """The `detail` of an EventBridge "Batch Job State Change" event (the DescribeJobs shape)."""

    job_name: str
    job_id: str
    job_queue: str
    status: str
    status_reason: str
    attempts: tuple[JobAttempt, ...]
    log_stream_name: str
    environment: Mapping[str, str]
    created_at: int | None
    started_at: int | None
    stopped_at: int | None
    array_index: int | None
    array_size: int | None

    @classmethod
    def from_detail(cls, detail: Mapping[str, Any]) -> BatchJobStateChange:
        container = detail.get("container") or {}
        array = detail.get("arrayProperties") or {}
        attempts = tuple(
            JobAttempt(
                exit_code=(attempt.get("container") or {}).get("exitCode"),
                reason=str(
                    (attempt.get("container") or {}).get("reason") or attempt.get("statusReason") or ""
                ),
                log_stream_name=str((attempt.get("container") or {}).get("logStreamName") or ""),
                started_at=attempt.get("startedAt"),
                stopped_at=attempt.get("stoppedAt"),
            )
            for attempt in detail.get("attempts") or []
        )
        # The last attempt's stream is the one worth reading; the top-level field is the same for
        # single-attempt jobs and missing when a job never started.
        log_stream = str(container.get("logStreamName") or "") or next(
            (a.log_stream_name for a in reversed(attempts) if a.log_stream_name), ""
        )
        return cls(
            job_name=str(detail.get("jobName", "")),
            job_id=str(detail.get("jobId", "")),
            job_queue=str(detail.get("jobQueue", "")),
            status=str(detail.get("status", "")),
            status_reason=str(detail.get("statusReason") or ""),
            attempts=attempts,
            log_stream_name=log_stream,
            environment={
                str(item.get("name")): str(item.get("value", ""))
                for item in container.get("environment") or []
                if isinstance(item, dict)
            },
            created_at=detail.get("createdAt"),
            started_at=detail.get("startedAt"),
            stopped_at=detail.get("stoppedAt"),
            array_index=array.get("index"),
            array_size=array.get("size"),
        )
