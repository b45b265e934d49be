"""Process output copied into CloudWatch Logs in moto, as the awslogs driver and Lambda's runtime do."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Final

LOG_BATCH_LINES: Final = 1000  # CloudWatch takes at most 10,000 events (1 MB) per call


def _now_ms() -> int:
    return int(time.time() * 1000)


class CloudWatchStream:
    """Output lines into one CloudWatch Logs stream, sent in batches (best effort: the console has them)."""

    def __init__(self, logs: Any, group: str, stream: str, log: Callable[[str], None]) -> None:
        self._logs, self._group, self._stream, self._log = logs, group, stream, log
        self._pending: list[dict[str, Any]] = []
        self._failed = False
        self._lock = threading.Lock()  # the output pump adds while the owner may flush
        try:
            logs.create_log_stream(logGroupName=group, logStreamName=stream)
        except Exception as exc:  # a stream kept across restarts (the app's) is written on
            if "ResourceAlreadyExists" not in str(exc):
                self._failed = True
                log(f"CloudWatch Logs stream {stream} not written: {exc}")

    def _call(self, action: Callable[[], Any]) -> None:
        if self._failed:
            return
        try:
            action()
        except Exception as exc:  # logs are a copy; the job must not fail for them
            self._failed = True
            self._log(f"CloudWatch Logs stream {self._stream} not written: {exc}")

    def add(self, line: str) -> None:
        with self._lock:
            self._pending.append({"timestamp": _now_ms(), "message": line or " "})
            full = len(self._pending) >= LOG_BATCH_LINES
        if full:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            events, self._pending = self._pending, []
        if events:
            self._call(
                lambda: self._logs.put_log_events(
                    logGroupName=self._group, logStreamName=self._stream, logEvents=events
                )
            )
