"""The functions' structured logger writes the JSON lines Powertools' Logger wrote (issue 18 goal 4
replaced it to keep Powertools out of three functions' cold starts): same keys, same behaviour."""

from __future__ import annotations

import io
import json
from typing import Any

from lambdas.common.log import EVENT_BRIDGE, StructuredLogger
from tests.lambdas.events import LambdaContext


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_lines_carry_the_powertools_keys_the_context_and_the_extra() -> None:
    stream = io.StringIO()
    log = StructuredLogger(service="monitor", level="INFO", stream=stream)
    context = LambdaContext(function_name="monitor", memory_limit_in_mb=128)

    @log.inject_lambda_context(clear_state=True, correlation_id_path=EVENT_BRIDGE)
    def handler(event: dict[str, Any], context: LambdaContext) -> None:
        log.append_keys(job_id="j-1")
        log.info("job state change", extra={"status": "FAILED", "exit": 3})
        log.debug("not written at INFO")

    handler({"id": "event-1", "detail": {}}, context)
    handler({"id": "event-2"}, context)
    first, second = lines(stream)
    assert first["level"] == "INFO"
    assert first["message"] == "job state change"
    assert first["service"] == "monitor"
    assert first["location"].startswith("handler:")  # the caller, not the logger module
    assert first["timestamp"].endswith("+0000")
    assert first["correlation_id"] == "event-1"
    assert (first["status"], first["exit"], first["job_id"]) == ("FAILED", 3, "j-1")
    assert first["function_name"] == "monitor"
    assert first["function_memory_size"] == 128
    assert first["function_arn"] == context.invoked_function_arn
    assert first["function_request_id"] == context.aws_request_id
    assert (first["cold_start"], second["cold_start"]) == (True, False)
    assert second["correlation_id"] == "event-2"


def test_clear_state_drops_the_previous_invocations_keys() -> None:
    stream = io.StringIO()
    log = StructuredLogger(service="controller", stream=stream)

    @log.inject_lambda_context(clear_state=True)
    def handler(event: dict[str, Any], context: LambdaContext) -> None:
        if event.get("action"):
            log.append_keys(action=event["action"])
        log.set_correlation_id(context.aws_request_id)
        log.warning("done")

    handler({"action": "start"}, LambdaContext())
    handler({}, LambdaContext())
    first, second = lines(stream)
    assert first["action"] == "start"
    assert "action" not in second
    assert first["correlation_id"] != second["correlation_id"]
    assert second["level"] == "WARNING"


def test_exception_is_logged_with_its_name_and_traceback() -> None:
    stream = io.StringIO()
    log = StructuredLogger(service="dispatcher", stream=stream)
    try:
        raise TimeoutError("moto is slow")
    except TimeoutError:
        log.exception("transient failure", extra={"message_id": "m-1"})
    (line,) = lines(stream)
    assert line["level"] == "ERROR"
    assert line["exception_name"] == "TimeoutError"
    assert "moto is slow" in line["exception"]
    assert line["message_id"] == "m-1"


def test_values_json_cannot_encode_are_written_as_text() -> None:
    stream = io.StringIO()
    log = StructuredLogger(service="dispatcher", level="debug", stream=stream)
    log.debug("odd", extra={"path": object.__new__(type("Odd", (), {"__str__": lambda self: "odd!"}))})
    assert lines(stream)[0]["path"] == "odd!"
