"""Typed models of the messages and events the functions accept, with validation that explains itself."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any, Final, Literal, cast

from contract.limits import MAX_FILES_PER_CONTROLLER_REQUEST
from lambdas.common.validation import (
    InvalidMessageError,
    optional_collection,
    optional_str,
    plain_key,
    reject_unknown,
    require_mapping,
)

# SNS allows 256 KiB; a genuine job message is a few hundred bytes, so anything near the limit is
# a mistake (a whole file pasted into a message) and is refused before it is parsed.
MAX_MESSAGE_BYTES: Final = 64 * 1024
# A job message is four levels deep; far deeper JSON is hostile, and Python's parser would answer
# it with a RecursionError (a crash, retried as if transient) rather than a reason.
MAX_JSON_DEPTH: Final = 32
# The tokens depth depends on: an escape (skipped, so an escaped quote ends no string), a quote, a bracket.
_JSON_DEPTH_TOKEN = re.compile(r'\\.|["\[\]{}]')
UNKNOWN: Final = "unknown"

Action = Literal["start", "stop", "status", "start_and_process"]
ACTIONS: Final[tuple[Action, ...]] = ("start", "stop", "status", "start_and_process")


def utf8_size(text: str) -> int:
    """Bytes of `text` in UTF-8; an unpaired surrogate counts as the three bytes it would take."""
    return len(text.encode("utf-8", "surrogatepass"))


def too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text nests arrays/objects more than `limit` levels, found without recursion."""
    depth, in_string = 0, False
    for match in _JSON_DEPTH_TOKEN.finditer(text):  # linear: one pass, no backtracking
        symbol = match.group()
        if symbol == '"':
            in_string = not in_string
        elif not in_string and len(symbol) == 1:
            depth += 1 if symbol in "[{" else -1
            if depth > limit:
                return True
    return False


def cut_to_depth(value: Any, limit: int = MAX_JSON_DEPTH + 1) -> Any:
    """`value` with everything below `limit` levels replaced by "...": a deep event made printable."""
    if limit <= 0:
        return "..."
    if isinstance(value, Mapping):
        return {str(key): cut_to_depth(item, limit - 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [cut_to_depth(item, limit - 1) for item in value]
    return value


def decode_message(raw: str) -> Any:
    """The message's JSON value, or InvalidMessageError saying why there is none (size, depth, syntax)."""
    size = utf8_size(raw)
    if size > MAX_MESSAGE_BYTES:
        raise InvalidMessageError(
            f"message is {size} bytes, more than the {MAX_MESSAGE_BYTES} allowed", "MessageTooLarge"
        )
    if too_deep(raw):
        raise InvalidMessageError(
            f"message is nested more than {MAX_JSON_DEPTH} levels deep (arrays/objects)", "InvalidJSON"
        )
    try:
        return json.loads(raw)
    except RecursionError:  # unreachable after too_deep(); kept so no input can crash the parser
        raise InvalidMessageError("message is nested too deeply to parse", "InvalidJSON") from None
    except ValueError as exc:
        raise InvalidMessageError(f"message is not JSON: {exc}", "InvalidJSON") from None


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
        message = require_mapping(decode_message(raw), "message")
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
    def sender_key(raw: str) -> str | None:
        """The sender's `idempotency_key` tied to the payload (`<key>:<sha256 of the canonical JSON>`),
        if the message is decodable JSON with a usable key; else None.

        A fixed message re-sent under the same key is a new payload, so it is not taken for a
        duplicate of the one that failed; the same payload written differently still is one.
        """
        try:
            decoded = decode_message(raw)
        except InvalidMessageError:
            return None
        key = decoded.get("idempotency_key") if isinstance(decoded, dict) else None
        if not isinstance(key, str) or not 0 < len(key) <= 256:
            return None
        canonical = json.dumps(decoded, sort_keys=True, separators=(",", ":"))  # ASCII: surrogates escaped
        return f"{key}:{hashlib.sha256(canonical.encode('ascii')).hexdigest()}"


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
        if not isinstance(files, list) or not 0 < len(files) <= MAX_FILES_PER_CONTROLLER_REQUEST:
            raise InvalidMessageError(
                f"{field}.payload.files must be a list of 1..{MAX_FILES_PER_CONTROLLER_REQUEST} object keys"
            )
        return cls(
            action="start_and_process",
            files=tuple(plain_key(item, f"{field}.payload.files[{i}]") for i, item in enumerate(files)),
            collection=optional_collection(payload, "collection", f"{field}.payload"),
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
