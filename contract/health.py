"""The app's `GET /health` document: its shape, and the parser the Lambdas read it with.

The app's response model (gpu_app/schemas.py `HealthOut`, `Limits`) has these fields with these
types (tests/contract pins it); the controller and the idle stopper read a body with `AppHealth.parse`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Final, Literal, TypedDict, TypeGuard

from contract.limits import files_per_request

HealthStatus = Literal["starting", "ok", "degraded", "failed", "stopped"]
HEALTH_STATUSES: Final[tuple[HealthStatus, ...]] = ("starting", "ok", "degraded", "failed", "stopped")


class HealthLimits(TypedDict):
    """`limits`: what one request to the app may carry."""

    max_files_per_request: int
    max_upload_bytes: int
    max_request_bytes: int
    max_image_pixels: int


class HealthDocument(TypedDict):
    """The fields of `/health` the Lambdas rely on (the app sends more: model, reasons, ...)."""

    status: HealthStatus
    ready: bool
    idle_seconds: float
    jobs_in_progress: int
    limits: HealthLimits


def _number(value: Any) -> TypeGuard[int | float]:  # bool is an int to Python, not to JSON
    return not isinstance(value, bool) and isinstance(value, int | float)


def _integer(value: Any) -> TypeGuard[int]:
    return not isinstance(value, bool) and isinstance(value, int)


@dataclasses.dataclass(frozen=True)
class AppHealth:
    """A parsed `/health` body (every field, known or not, is kept in `raw`)."""

    status: str
    ready: bool
    idle_seconds: float
    jobs_in_progress: int
    raw: Mapping[str, Any]
    # `limits.max_files_per_request`: the most files one /process takes (None: an app too old to say).
    max_files_per_request: int | None = None

    @classmethod
    def parse(cls, value: Any) -> AppHealth:
        """ValueError naming the field when the body is not a health document."""
        if not isinstance(value, dict):
            raise ValueError("health body is not a JSON object")
        status, ready = value.get("status"), value.get("ready")
        idle, jobs = value.get("idle_seconds"), value.get("jobs_in_progress")
        if not isinstance(status, str) or not isinstance(ready, bool):
            raise ValueError("health body lacks status/ready")
        if not _number(idle):
            raise ValueError("health body lacks a numeric idle_seconds")
        if not _integer(jobs):
            raise ValueError("health body lacks an integer jobs_in_progress")
        limits = value.get("limits")
        max_files = limits.get("max_files_per_request") if isinstance(limits, dict) else None
        if max_files is not None and (not _integer(max_files) or max_files < 1):
            raise ValueError(f"health limits.max_files_per_request is not a positive integer: {max_files!r}")
        return cls(
            status=status,
            ready=ready,
            idle_seconds=float(idle),
            jobs_in_progress=jobs,
            raw=value,
            max_files_per_request=max_files,
        )

    @property
    def starting(self) -> bool:
        return self.status == "starting"

    @property
    def files_per_request(self) -> int:
        """How many files to send in one request to this app (see `contract.limits`)."""
        return files_per_request(self.max_files_per_request)
