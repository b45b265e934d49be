"""The monitor's typed configuration (lambdas/common/config.py builds it from env.py's
variables). In the function's own folder: each function defines only its own class at import."""

from __future__ import annotations

from typing import NamedTuple

from lambdas.common.cache import per_container
from lambdas.common.config import load


class MonitorConfig(NamedTuple):
    notifications_topic_arn: str


@per_container
def monitor_config() -> MonitorConfig:
    return load(MonitorConfig, "monitor")
