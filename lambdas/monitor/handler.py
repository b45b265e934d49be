"""Lambda entry point of the job monitor (EventBridge "Batch Job State Change" rule)."""

from __future__ import annotations

# boto3 first, from the top of the handler: the same modules load, but boto3 imported three modules
# deep (handler -> service -> aws) measured 3-5% slower (issue 18 goal 4; lambdas/README.md).
import lambdas.common.aws  # noqa: F401  isort: skip
from typing import TYPE_CHECKING, Any

from lambdas.common.log import EVENT_BRIDGE, logger
from lambdas.monitor.config import monitor_config
from lambdas.monitor.service import notify_state_change

if TYPE_CHECKING:
    from lambdas.common.lambda_context import LambdaContext


@logger.inject_lambda_context(clear_state=True, correlation_id_path=EVENT_BRIDGE)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return notify_state_change(event, monitor_config())
