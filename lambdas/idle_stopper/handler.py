"""Lambda entry point of the idle stopper (EventBridge schedule)."""

from __future__ import annotations

# boto3 first, from the top of the handler: the same modules load, but boto3 imported three modules
# deep (handler -> service -> aws) measured 3-5% slower (issue 18 goal 4; lambdas/README.md).
import lambdas.common.aws  # noqa: F401  isort: skip
from typing import TYPE_CHECKING, Any

from lambdas.common.log import logger
from lambdas.idle_stopper.config import idle_stopper_config
from lambdas.idle_stopper.service import check_and_stop

if TYPE_CHECKING:
    from lambdas.common.lambda_context import LambdaContext


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger.set_correlation_id(context.aws_request_id)
    return check_and_stop(idle_stopper_config())
