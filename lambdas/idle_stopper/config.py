"""The idle stopper's typed configuration (lambdas/common/config.py builds it from env.py's
variables). In the function's own folder: each function defines only its own class at import."""

from __future__ import annotations

from typing import NamedTuple

from lambdas.common.cache import per_container
from lambdas.common.config import load


class IdleStopperConfig(NamedTuple):
    # No API key: the idle stopper reads only the open /health.
    gpu_instance_id: str
    app_port: int
    app_url_override: str
    auto_shutdown_idle_time: int
    unreachable_grace_seconds: int
    notifications_topic_arn: str


@per_container
def idle_stopper_config() -> IdleStopperConfig:
    return load(IdleStopperConfig, "idle_stopper")
