"""Lambda entry point of the dispatcher (SNS subscription or direct invocation)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.common.log import logger
from lambdas.dispatcher.service import handle_event


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    return handle_event(event, context)
