"""The controller's request, from whoever sends it: the dispatcher's `gpu_instance` trigger and S3
uploads, or a direct invocation; with the sender's metadata. Its own module so that the controller
imports only its schema (each class defined at import is part of the cold start: issue 18 goal 4);
NamedTuples, which take a tenth of a frozen dataclass's time to define."""

from __future__ import annotations

from typing import Any, Final, Literal, NamedTuple, cast

from contract.limits import MAX_FILES_PER_CONTROLLER_REQUEST
from lambdas.common.validation import (
    InvalidMessageError,
    optional_collection,
    optional_str,
    plain_key,
    reject_unknown,
    require_mapping,
)

UNKNOWN: Final = "unknown"

Action = Literal["start", "stop", "status", "start_and_process"]
ACTIONS: Final[tuple[Action, ...]] = ("start", "stop", "status", "start_and_process")


class Metadata(NamedTuple):
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
        return self._asdict()


class ControllerRequest(NamedTuple):
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
