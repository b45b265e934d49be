"""One Lambda execution environment ("container") of the local stack:
`python -m local_stack.worker <module.function> <answer fd>`.

Like Lambda's Python runtime it imports the handler once (the init phase), then runs one invocation
at a time. Requests arrive as JSON lines on stdin; answers leave as JSON lines on the answer fd;
whatever the function prints (Powertools' JSON logs) goes to stdout between the START, END and
REPORT lines Lambda writes to CloudWatch. Module state (boto3 clients, configuration, the API key)
lives as long as this process, as it does in a warm container. Only the standard library is
imported here, so the function's own imports are what the init phase measures.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import sys
import time
import traceback
from typing import Any, TextIO


class LambdaContext:
    """The attributes and method the Python runtime's context object has (the handlers use them)."""

    def __init__(self, request_id: str, invoked_function_arn: str, deadline_ms: int) -> None:
        self.aws_request_id = request_id
        self.invoked_function_arn = invoked_function_arn
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = os.environ["AWS_LAMBDA_FUNCTION_VERSION"]
        self.memory_limit_in_mb = int(os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"])
        self.log_group_name = os.environ["AWS_LAMBDA_LOG_GROUP_NAME"]
        self.log_stream_name = os.environ["AWS_LAMBDA_LOG_STREAM_NAME"]
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(self._deadline_ms - int(time.time() * 1000), 0)


def error_payload(exc: BaseException, request_id: str, error_type: str | None = None) -> dict[str, Any]:
    """The body Lambda returns for an unhandled error (X-Amz-Function-Error: Unhandled)."""
    return {
        "errorMessage": str(exc),
        "errorType": error_type or type(exc).__name__,
        "requestId": request_id,
        "stackTrace": traceback.format_list(traceback.extract_tb(exc.__traceback__)),
    }


def _max_memory_mb() -> int:
    used = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return used // (1024 * 1024) if sys.platform == "darwin" else used // 1024  # bytes on macOS


def _invoke(handler: Any, request: dict[str, Any]) -> dict[str, Any]:
    request_id = request["request_id"]
    context = LambdaContext(request_id, request["invoked_function_arn"], request["deadline_ms"])
    try:
        event = json.loads(request["payload"])
    except (ValueError, RecursionError) as exc:  # what Lambda's Python runtime answers for such input
        return {"error": error_payload(exc, request_id, "Runtime.UnmarshalError")}
    try:
        result = handler(event, context)
    except Exception as exc:
        traceback.print_exc(file=sys.stdout)  # the runtime logs the error, as in CloudWatch
        return {"error": error_payload(exc, request_id)}
    try:
        return {"result": json.loads(json.dumps(result))}
    except (TypeError, ValueError) as exc:
        return {"error": error_payload(exc, request_id, "Runtime.MarshalError")}


def serve(handler_path: str, answers: TextIO, requests: TextIO) -> None:
    started = time.monotonic()
    module_name, _, attribute = handler_path.rpartition(".")
    handler: Any = None
    init_error: Exception | None = None
    try:
        handler = getattr(importlib.import_module(module_name), attribute)
    except Exception as exc:  # reported on every invocation, as Lambda does for a failed init
        traceback.print_exc(file=sys.stdout)
        init_error = exc
    # Lambda reports the init phase once, on the first invocation's REPORT line.
    init_note = f"\tInit Duration: {(time.monotonic() - started) * 1000:.2f} ms"
    answers.write(json.dumps({"ready": True}) + "\n")
    answers.flush()
    version = os.environ["AWS_LAMBDA_FUNCTION_VERSION"]
    memory = os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]
    for line in requests:
        request = json.loads(line)
        request_id = request["request_id"]
        print(f"START RequestId: {request_id} Version: {version}", flush=True)
        began = time.monotonic()
        if init_error is not None:
            answer = {"error": error_payload(init_error, request_id, "Runtime.ImportModuleError")}
        else:
            answer = _invoke(handler, request)
        duration = (time.monotonic() - began) * 1000
        report = (
            f"REPORT RequestId: {request_id}\tDuration: {duration:.2f} ms\t"
            f"Billed Duration: {int(duration) + 1} ms\tMemory Size: {memory} MB\t"
            f"Max Memory Used: {_max_memory_mb()} MB"
        )
        report, init_note = report + init_note, ""
        print(f"END RequestId: {request_id}", flush=True)
        print(report, flush=True)
        answers.write(json.dumps({"request_id": request_id, **answer}) + "\n")
        answers.flush()


def main(argv: list[str]) -> int:
    handler_path, answer_fd = argv[1], int(argv[2])
    with os.fdopen(answer_fd, "w") as answers:
        serve(handler_path, answers, sys.stdin)
    return 0  # stdin closed: the host retired this container


if __name__ == "__main__":
    sys.exit(main(sys.argv))
