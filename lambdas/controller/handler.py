"""Lambda entry point of the GPU instance controller (`aws lambda invoke --payload '{"action": ...}'`)."""

from __future__ import annotations

# boto3 first, from the top of the handler: the same modules load, but boto3 imported three modules
# deep (handler -> service -> aws) measured 3-5% slower (issue 18 goal 4; lambdas/README.md).
import lambdas.common.aws  # noqa: F401  isort: skip
from typing import TYPE_CHECKING, Any, Final

from lambdas.common.controller_request import ControllerRequest
from lambdas.common.log import logger
from lambdas.controller.config import controller_config
from lambdas.controller.service import run

if TYPE_CHECKING:
    from lambdas.common.lambda_context import LambdaContext

# Stop waiting this long before Lambda's own timeout, so the answer (or error) is still returned.
SAFETY_MARGIN_SECONDS: Final = 15.0


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    logger.set_correlation_id(context.aws_request_id)
    # A malformed request raises InvalidMessageError: the invoker sees its reason as the error.
    request = ControllerRequest.parse(event)
    logger.append_keys(action=request.action, trigger=request.metadata.as_dict())
    return run(
        request,
        controller_config(),
        lambda: max(context.get_remaining_time_in_millis() / 1000 - SAFETY_MARGIN_SECONDS, 0.0),
    )
