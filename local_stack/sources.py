"""EventBridge schedule rules, locally: moto stores the rules Terraform creates but never fires them.
(SNS subscriptions reach the host from moto itself: moto_server.py.)
"""

from __future__ import annotations

from collections.abc import Callable

from local_stack.events import scheduled_event
from local_stack.host import LambdaHost
from local_stack.processes import LineSink, Loop


class Schedule(Loop):
    """An EventBridge rate() rule: a "Scheduled Event" for the function every `interval` seconds
    (the first after one interval, as a new rule), skipped while `paused()` says so."""

    def __init__(
        self,
        host: LambdaHost,
        function: str,
        rule_arn: str,
        interval: float,
        paused: Callable[[], bool],
        log: LineSink,
    ) -> None:
        super().__init__(f"schedule->{function}", interval, self._fire, log)
        self._host, self._function, self._rule_arn = host, function, rule_arn
        self._paused = paused
        self._first = True

    def _fire(self) -> None:
        if self._first:  # Loop steps at once; a rule's first event comes one interval later
            self._first = False
            return
        if self._paused():
            return
        account, region = self._rule_arn.split(":")[4], self._rule_arn.split(":")[3]
        self._host.invoke_async(self._function, scheduled_event(self._rule_arn, account, region))
