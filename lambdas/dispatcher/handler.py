"""Lambda entry point of the dispatcher (SNS subscription or direct invocation)."""

from __future__ import annotations

# boto3 first, from the top of the handler: the same modules load, but boto3 imported three modules
# deep (handler -> service -> aws) measured 3-5% slower (issue 18 goal 4; lambdas/README.md).
import lambdas.common.aws  # noqa: F401  isort: skip
from typing import TYPE_CHECKING, Any

from lambdas.common.log import logger
from lambdas.dispatcher.service import handle_event

if TYPE_CHECKING:
    from lambdas.common.lambda_context import LambdaContext


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    return handle_event(event, context)
