"""The controller's typed configuration (lambdas/common/config.py builds it from env.py's
variables). In the function's own folder: each function defines only its own class at import."""

from __future__ import annotations

from typing import NamedTuple

from lambdas.common.cache import per_container
from lambdas.common.config import load


class ControllerConfig(NamedTuple):
    gpu_instance_id: str
    app_port: int
    app_url_override: str
    api_key_parameter: str
    start_timeout_seconds: int
    health_timeout_seconds: int
    notifications_topic_arn: str
    fallback_instance_types: tuple[str, ...]


@per_container
def controller_config() -> ControllerConfig:
    return load(ControllerConfig, "controller")
