"""What invokes the functions in AWS without anyone calling them: the trigger topic's subscription and
the idle-check schedule (moto delivers neither to a function: it has no Lambda runtime without Docker,
and its EventBridge schedules never fire).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Final

from lambdas.local.events import scheduled_event, sns_record
from lambdas.local.host import LambdaHost
from lambdas.local.local_aws import LocalAws
from lambdas.local.processes import LineSink, Loop

POLL_WAIT_SECONDS: Final = 1  # SQS long poll; short, so that stopping is quick


class TopicSubscription(Loop):
    """SNS -> Lambda: SNS delivers each notification to the stand-in SQS queue (raw delivery off);
    this turns it into the SNS event and queues it for the function as an asynchronous invocation,
    which is how SNS invokes Lambda (Lambda's async retries and dead-letter queue then apply). The SQS
    message is deleted once the invocation is queued, as SNS is done once Lambda accepted the event.
    """

    def __init__(
        self,
        aws: LocalAws,
        host: LambdaHost,
        function: str,
        queue_url: str,
        subscription_arn: str,
        log: LineSink,
    ) -> None:
        super().__init__(f"sns->{function}", 0.0, self._deliver, log)
        self._sqs = aws.client("sqs")
        self._host, self._function = host, function
        self._queue_url, self._subscription_arn = queue_url, subscription_arn

    def _deliver(self) -> None:
        messages = self._sqs.receive_message(
            QueueUrl=self._queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=POLL_WAIT_SECONDS
        ).get("Messages", [])
        for message in messages:
            try:
                record = sns_record(json.loads(message["Body"]), self._subscription_arn)
            except (ValueError, KeyError) as exc:
                self._log(f"{self.name}: dropped a message that is not an SNS notification ({exc})")
            else:
                self._host.invoke_async(self._function, {"Records": [record]})
            self._sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"])


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
