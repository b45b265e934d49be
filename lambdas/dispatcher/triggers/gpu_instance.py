"""`gpu_instance`: hand a start/stop/status/start_and_process request to the controller function."""

from __future__ import annotations

import json
from typing import Any

from lambdas.common.aws import client
from lambdas.common.controller_request import ControllerRequest
from lambdas.common.messages import TriggerMessage
from lambdas.dispatcher.triggers.base import BaseTrigger, DispatchContext


class GpuInstanceTrigger(BaseTrigger):
    trigger_type = "gpu_instance"

    def __init__(self, message: TriggerMessage, context: DispatchContext) -> None:
        super().__init__(message, context)
        # The controller's own model: a request the dispatcher accepts is one the controller accepts.
        request = ControllerRequest.parse(message.data, "data")
        self.request = request._replace(metadata=message.metadata)

    def execute(self) -> dict[str, Any]:
        # Asynchronous: starting and processing can take minutes; the controller reports by its logs
        # and notifications, and Lambda retries it on its own.
        function = self.context.config.controller_function_name
        response = client("lambda").invoke(
            FunctionName=function,
            InvocationType="Event",
            Payload=json.dumps(self.request.as_payload()).encode("utf-8"),
        )
        return {"controller": function, "action": self.request.action, "status_code": response["StatusCode"]}
