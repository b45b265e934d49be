"""Lambda entry point of the job monitor (EventBridge "Batch Job State Change" rule)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.common.config import monitor_config
from lambdas.common.log import logger
from lambdas.monitor.service import notify_state_change


@logger.inject_lambda_context(clear_state=True, correlation_id_path=correlation_paths.EVENT_BRIDGE)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return notify_state_change(event, monitor_config())
