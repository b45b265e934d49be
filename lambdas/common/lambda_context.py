"""The Lambda context object, as the handlers use it (a Protocol: the runtime's class is not importable)."""

from __future__ import annotations

from typing import Protocol


class LambdaContext(Protocol):
    @property
    def function_name(self) -> str: ...

    @property
    def memory_limit_in_mb(self) -> int: ...

    @property
    def invoked_function_arn(self) -> str: ...

    @property
    def aws_request_id(self) -> str: ...

    def get_remaining_time_in_millis(self) -> int: ...
