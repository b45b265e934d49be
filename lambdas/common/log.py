"""The one structured JSON logger of every function (service name from POWERTOOLS_SERVICE_NAME).

It writes the JSON lines Powertools' Logger writes (the same keys: level, location, message,
timestamp, service, cold_start, function_name, function_memory_size, function_arn,
function_request_id, correlation_id, the `extra` and appended keys, exception and exception_name),
with the part of its interface the handlers use, in ~100 lines of the standard library.

Why not Powertools' Logger: importing any part of `aws_lambda_powertools` runs its package
__init__, which imports the Logger (jmespath, typing_extensions, its formatter and buffer), Metrics
and Tracer: ~7 ms of every cold start after boto3, a twelfth of `import boto3` itself, for
features no function here uses (issue 18 goal 4: handler import <= 1.1x boto3). No function
imports Powertools at all (the dispatcher's idempotency: lambdas/common/idempotency.py).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any, Final, TextIO, TypeVar

# The EventBridge event's id: what Powertools' correlation_paths.EVENT_BRIDGE selects.
EVENT_BRIDGE: Final = "id"

Handler = TypeVar("Handler", bound=Callable[..., Any])


class JsonFormatter(logging.Formatter):
    """One JSON object per record: the fixed keys, then the logger's keys, then the call's `extra`."""

    def __init__(self, keys: Mapping[str, Any]) -> None:
        super().__init__()
        self.keys = keys

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "level": record.levelname,
            "location": f"{record.funcName}:{record.lineno}",
            "message": record.getMessage(),
            # Powertools' format (utc=True): "2026-11-30 02:30:00,123+0000".
            "timestamp": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(record.created))
            + f",{int(record.msecs):03d}+0000",
            **self.keys,
            **getattr(record, "extra_keys", {}),
        }
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
            entry["exception_name"] = record.exc_info[0].__name__
        return json.dumps(entry, default=str, ensure_ascii=False)


class StructuredLogger:
    """Powertools-compatible structured logging: `info(msg, extra={...})`, appended keys, a
    correlation id, and `inject_lambda_context` for the Lambda context keys."""

    def __init__(
        self, service: str | None = None, level: str | None = None, stream: TextIO | None = None
    ) -> None:
        self.service = service or os.environ.get("POWERTOOLS_SERVICE_NAME") or "service_undefined"
        self._keys: dict[str, Any] = {"service": self.service}
        self._cold_start = True
        self._logger = logging.getLogger(self.service)
        self._logger.propagate = False  # Lambda's root handler would write every line a second time
        self._logger.setLevel(
            (level or os.environ.get("POWERTOOLS_LOG_LEVEL") or os.environ.get("LOG_LEVEL") or "INFO").upper()
        )
        handler = logging.StreamHandler(stream or sys.stdout)
        handler.setFormatter(JsonFormatter(self._keys))
        self._logger.handlers = [handler]

    # --- keys --------------------------------------------------------------------------------
    def append_keys(self, **keys: Any) -> None:
        self._keys.update(keys)

    def remove_keys(self, names: list[str]) -> None:
        for name in names:
            self._keys.pop(name, None)

    def set_correlation_id(self, value: str | None) -> None:
        self._keys["correlation_id"] = value

    def get_correlation_id(self) -> str | None:
        return self._keys.get("correlation_id")

    # --- records -----------------------------------------------------------------------------
    def _log(
        self, level: int, msg: object, args: tuple[Any, ...], extra: Mapping[str, Any] | None, **kw: Any
    ) -> None:
        if self._logger.isEnabledFor(level):
            # stacklevel 3: the location is the caller of info()/warning(), not this module.
            self._logger.log(level, msg, *args, extra={"extra_keys": dict(extra or {})}, stacklevel=3, **kw)

    def debug(self, msg: object, *args: Any, extra: Mapping[str, Any] | None = None) -> None:
        self._log(logging.DEBUG, msg, args, extra)

    def info(self, msg: object, *args: Any, extra: Mapping[str, Any] | None = None) -> None:
        self._log(logging.INFO, msg, args, extra)

    def warning(self, msg: object, *args: Any, extra: Mapping[str, Any] | None = None) -> None:
        self._log(logging.WARNING, msg, args, extra)

    def error(self, msg: object, *args: Any, extra: Mapping[str, Any] | None = None) -> None:
        self._log(logging.ERROR, msg, args, extra)

    def exception(self, msg: object, *args: Any, extra: Mapping[str, Any] | None = None) -> None:
        self._log(logging.ERROR, msg, args, extra, exc_info=True)

    # --- the handler decorator -----------------------------------------------------------------
    def inject_lambda_context(
        self,
        handler: Handler | None = None,
        *,
        clear_state: bool = False,
        correlation_id_path: str | None = None,
    ) -> Any:
        """Add the context's keys to every line of the invocation (and the correlation id found at
        `correlation_id_path`, a dotted path into the event); `clear_state` drops the previous
        invocation's appended keys first."""
        if handler is None:
            return functools.partial(
                self.inject_lambda_context, clear_state=clear_state, correlation_id_path=correlation_id_path
            )

        @functools.wraps(handler)
        def decorated(event: Any, context: Any, *args: Any, **kwargs: Any) -> Any:
            if clear_state:
                self._keys.clear()
                self._keys["service"] = self.service
            self.append_keys(
                cold_start=self._cold_start,
                function_name=getattr(context, "function_name", None),
                function_memory_size=getattr(context, "memory_limit_in_mb", None),
                function_arn=getattr(context, "invoked_function_arn", None),
                function_request_id=getattr(context, "aws_request_id", None),
            )
            self._cold_start = False
            if correlation_id_path:
                self.set_correlation_id(_lookup(event, correlation_id_path))
            return handler(event, context, *args, **kwargs)

        return decorated


def _lookup(event: Any, path: str) -> Any:
    """`event` at a dotted path (a.b.c), or None where a step is missing."""
    value = event
    for step in path.split("."):
        value = value.get(step) if isinstance(value, Mapping) else None
    return value


logger = StructuredLogger()
