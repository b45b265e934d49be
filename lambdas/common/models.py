"""Typed models of the messages and events the functions accept, with validation that explains itself."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any, Final, Literal, cast

from lambdas.common.validation import (
    InvalidMessageError,
    optional_str,
    plain_key,
    reject_unknown,
    require_mapping,
)

# SNS allows 256 KiB; a genuine job message is a few hundred bytes, so anything near the limit is
# a mistake (a whole file pasted into a message) and is refused before it is parsed.
MAX_MESSAGE_BYTES: Final = 64 * 1024
MAX_FILES_PER_REQUEST: Final = 1000
UNKNOWN: Final = "unknown"

Action = Literal["start", "stop", "status", "start_and_process"]
ACTIONS: Final[tuple[Action, ...]] = ("start", "stop", "status", "start_and_process")


@dataclasses.dataclass(frozen=True)
class Metadata:
    user: str = UNKNOWN
    project: str = UNKNOWN
    experiment: str = UNKNOWN

    @classmethod
    def parse(cls, value: Any) -> Metadata:
        if value is None:
            return cls()
        metadata = require_mapping(value, "metadata")
        # Other metadata keys are informational and ignored; these three travel with the job.
        fields = {
            name: optional_str(metadata, name, "metadata", 128) for name in ("user", "project", "experiment")
        }
        return cls(**{name: item for name, item in fields.items() if item is not None})

    def as_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class TriggerMessage:
    """`{"trigger_type": ..., "data": {...}, "metadata": {...}, "idempotency_key": ...}`."""

    trigger_type: str
    data: Mapping[str, Any]
    metadata: Metadata
    idempotency_key: str | None

    @classmethod
    def parse(cls, raw: str) -> TriggerMessage:
        size = len(raw.encode("utf-8"))
        if size > MAX_MESSAGE_BYTES:
            raise InvalidMessageError(
                f"message is {size} bytes, more than the {MAX_MESSAGE_BYTES} allowed", "MessageTooLarge"
            )
        try:
            decoded = json.loads(raw)
        except ValueError as exc:
            raise InvalidMessageError(f"message is not JSON: {exc}", "InvalidJSON") from None
        message = require_mapping(decoded, "message")
        reject_unknown(message, ("trigger_type", "data", "metadata", "idempotency_key"), "message")
        trigger_type = optional_str(message, "trigger_type", "message", 64)
        if trigger_type is None:
            raise InvalidMessageError("message.trigger_type is required")
        return cls(
            trigger_type=trigger_type,
            data=require_mapping(message.get("data", {}), "data"),
            metadata=Metadata.parse(message.get("metadata")),
            idempotency_key=optional_str(message, "idempotency_key", "message"),
        )

    @staticmethod
    def explicit_idempotency_key(raw: str) -> str | None:
        """The sender's `idempotency_key`, if the message is small valid JSON that has a usable one."""
        if len(raw) > MAX_MESSAGE_BYTES:
            return None
        try:
            decoded = json.loads(raw)
        except ValueError:
            return None
        key = decoded.get("idempotency_key") if isinstance(decoded, dict) else None
        return key if isinstance(key, str) and 0 < len(key) <= 256 else None


@dataclasses.dataclass(frozen=True)
class ControllerRequest:
    """`{"action": "start"|"stop"|"status"|"start_and_process", "payload": {"files": [...]}}`."""

    action: Action
    files: tuple[str, ...] = ()
    collection: str | None = None
    # Who asked (travels from the dispatcher's message into the controller's logs).
    metadata: Metadata = Metadata()

    @classmethod
    def parse(cls, value: Any, field: str = "request") -> ControllerRequest:
        request = require_mapping(value, field)
        reject_unknown(request, ("action", "payload", "metadata"), field)
        action = request.get("action")
        if action not in ACTIONS:
            raise InvalidMessageError(f"{field}.action must be one of {', '.join(ACTIONS)}, got {action!r}")
        payload = require_mapping(request.get("payload", {}), f"{field}.payload")
        metadata = Metadata.parse(request.get("metadata"))
        if action != "start_and_process":
            reject_unknown(payload, (), f"{field}.payload")
            return cls(action=cast(Action, action), metadata=metadata)
        reject_unknown(payload, ("files", "collection"), f"{field}.payload")
        files = payload.get("files")
        if not isinstance(files, list) or not 0 < len(files) <= MAX_FILES_PER_REQUEST:
            raise InvalidMessageError(
                f"{field}.payload.files must be a list of 1..{MAX_FILES_PER_REQUEST} object keys"
            )
        return cls(
            action="start_and_process",
            files=tuple(plain_key(item, f"{field}.payload.files[{i}]") for i, item in enumerate(files)),
            collection=optional_str(payload, "collection", f"{field}.payload", 128),
            metadata=metadata,
        )

    def as_payload(self) -> dict[str, Any]:
        """The event the controller function is invoked with."""
        event: dict[str, Any] = {"action": self.action, "metadata": self.metadata.as_dict()}
        if self.action == "start_and_process":
            event["payload"] = {"files": list(self.files)}
            if self.collection is not None:
                event["payload"]["collection"] = self.collection
        return event


@dataclasses.dataclass(frozen=True)
class AppHealth:
    """The app's `GET /health` body (fields beyond these are kept in `raw`)."""

    status: str
    ready: bool
    idle_seconds: float
    jobs_in_progress: int
    raw: Mapping[str, Any]

    @classmethod
    def parse(cls, value: Any) -> AppHealth:
        if not isinstance(value, dict):
            raise ValueError("health body is not a JSON object")
        status, ready = value.get("status"), value.get("ready")
        idle, jobs = value.get("idle_seconds"), value.get("jobs_in_progress")
        if not isinstance(status, str) or not isinstance(ready, bool):
            raise ValueError("health body lacks status/ready")
        if isinstance(idle, bool) or not isinstance(idle, int | float):
            raise ValueError("health body lacks a numeric idle_seconds")
        if isinstance(jobs, bool) or not isinstance(jobs, int):
            raise ValueError("health body lacks an integer jobs_in_progress")
        return cls(status=status, ready=ready, idle_seconds=float(idle), jobs_in_progress=jobs, raw=value)

    @property
    def starting(self) -> bool:
        return self.status == "starting"


@dataclasses.dataclass(frozen=True)
class JobAttempt:
    exit_code: int | None
    reason: str
    log_stream_name: str
    started_at: int | None
    stopped_at: int | None


@dataclasses.dataclass(frozen=True)
class BatchJobStateChange:
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
