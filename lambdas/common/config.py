"""Typed configuration of each function, read from the variables declared in `env.py` and nowhere else."""

from __future__ import annotations

import dataclasses
import os
import typing
from typing import Any, TypeVar

from contract.errors import ConfigError
from lambdas.common import env
from lambdas.common.cache import per_container

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class DispatcherConfig:
    ml_input_bucket: str
    ml_output_bucket: str
    gpu_job_queue: str
    cpu_job_queue: str
    script_job_definition_gpu: str
    script_job_definition_cpu: str
    embed_job_definition_gpu: str
    embed_job_definition_cpu: str
    default_gpu_vcpus: int
    default_gpu_memory: int
    default_gpu_gpus: int
    default_cpu_vcpus: int
    default_cpu_memory: int
    max_vcpus: int
    gpu_compute_max_vcpus: int
    cpu_compute_max_vcpus: int
    max_memory: int
    max_gpus: int
    min_memory: int
    images_per_child: int
    input_read_prefixes: tuple[str, ...]
    s3_event_prefix: str
    event_batch_threshold: int
    video_instance_max_bytes: int
    controller_function_name: str
    idempotency_table: str
    dead_letter_queue_url: str


@dataclasses.dataclass(frozen=True)
class ControllerConfig:
    gpu_instance_id: str
    app_port: int
    app_url_override: str
    api_key_parameter: str
    start_timeout_seconds: int
    health_timeout_seconds: int
    notifications_topic_arn: str
    fallback_instance_types: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class MonitorConfig:
    notifications_topic_arn: str


@dataclasses.dataclass(frozen=True)
class IdleStopperConfig:
    # No API key: the idle stopper reads only the open /health.
    gpu_instance_id: str
    app_port: int
    app_url_override: str
    auto_shutdown_idle_time: int
    unreachable_grace_seconds: int
    notifications_topic_arn: str


def _convert(name: str, raw: str, kind: Any) -> Any:
    if kind is str:
        return raw
    if kind is int:
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not an integer") from None
        if value < 0:
            raise ConfigError(f"{name}={raw!r} must not be negative")
        return value
    if kind == tuple[str, ...]:
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    raise ConfigError(f"{name}: no conversion to {kind!r}")


def load(cls: type[T], function: str) -> T:
    """Build `cls` from the environment: field `foo_bar` is variable FOO_BAR of `function` in env.py."""
    declared = env.FUNCTION_ENVIRONMENT[function]
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    missing: list[str] = []
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        name = field.name.upper()
        if name not in declared:
            raise ConfigError(f"{cls.__name__}.{field.name}: {name} is not declared for {function} in env.py")
        raw = os.environ.get(name)
        if raw is None or (raw == "" and declared[name] is None):
            raw = declared[name]
        if raw is None:
            missing.append(name)
            continue
        values[field.name] = _convert(name, raw, hints[field.name])
    if missing:
        raise ConfigError(f"{function}: required environment variables not set: {', '.join(missing)}")
    return cls(**values)


@per_container
def dispatcher_config() -> DispatcherConfig:
    return load(DispatcherConfig, "dispatcher")


@per_container
def controller_config() -> ControllerConfig:
    return load(ControllerConfig, "controller")


@per_container
def monitor_config() -> MonitorConfig:
    return load(MonitorConfig, "monitor")


@per_container
def idle_stopper_config() -> IdleStopperConfig:
    return load(IdleStopperConfig, "idle_stopper")
