"""SQS event source mappings as Lambda runs them: what Terraform created (read back from moto's
`ListEventSourceMappings`) is polled here, because moto would hand each message to its own Lambda
the moment it is sent (see `moto_server.patch_sqs_event_source_delivery`).

Per mapping one poller, with the function's execution role (moto checks its sqs:ReceiveMessage /
DeleteMessage permissions as AWS does). It reads its mapping again every few seconds, so
`aws lambda update-event-source-mapping` (enabled, batch size, window, response types) takes effect:
- receives up to `BatchSize` messages, waiting at most `MaximumBatchingWindowInSeconds` after the
  first one (a window of 0 invokes with whatever one receive returned);
- invokes the function synchronously with the event Lambda builds (`Records[]` with messageId,
  receiptHandle, body, attributes, messageAttributes, md5OfBody, eventSource, eventSourceARN,
  awsRegion);
- deletes what succeeded. With `ReportBatchItemFailures`, the records named in
  `batchItemFailures` stay in the queue; a function error, or a response naming a record that is
  not in the batch, fails the whole batch, as in AWS. What stays becomes visible again after the
  queue's visibility timeout, and the queue's redrive policy moves it to its dead-letter queue after
  maxReceiveCount receives (moto honours both).
"""

from __future__ import annotations

import base64
import dataclasses
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, Final

from local_stack.host import Invocation, LambdaHost, TooManyRequestsError
from local_stack.local_aws import ClientSource, LocalAws
from local_stack.processes import LineSink, Loop

# Longest single receive: a stop never waits longer than this for a poller.
POLL_SECONDS: Final = 2
SQS_RECEIVE_MAX: Final = 10
THROTTLE_BACKOFF_SECONDS: Final = 1.0
ERROR_BACKOFF_SECONDS: Final = 1.0
ROLE_CREDENTIALS: Final = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
# How often a poller reads its mapping again (UpdateEventSourceMapping takes effect within this).
REFRESH_SECONDS: Final = 5.0
# Batches kept for GET /local/event-sources (what was delivered, to whom, and what came back).
RECENT_BATCHES: Final = 10


@dataclasses.dataclass(frozen=True)
class SqsMapping:
    """One enabled SQS event source mapping, as GetEventSourceMapping shows it."""

    uuid: str
    queue_arn: str
    queue_url: str
    function_key: str
    batch_size: int
    window_seconds: int
    report_batch_item_failures: bool
    enabled: bool = True

    @property
    def region(self) -> str:
        return self.queue_arn.split(":")[3]

    @property
    def queue_name(self) -> str:
        return self.queue_arn.rsplit(":", 1)[-1]


def _settings(configuration: Mapping[str, Any]) -> dict[str, Any]:
    """What a poller follows of a mapping's configuration (GetEventSourceMapping's shape)."""
    return {
        "batch_size": int(configuration.get("BatchSize") or 10),
        "window_seconds": int(configuration.get("MaximumBatchingWindowInSeconds") or 0),
        "report_batch_item_failures": "ReportBatchItemFailures"
        in (configuration.get("FunctionResponseTypes") or []),
        "enabled": configuration.get("State") == "Enabled",
    }


def read_sqs_mappings(aws: ClientSource, host: LambdaHost) -> list[SqsMapping]:
    """The mappings from an SQS queue to one of the host's functions."""
    mappings: list[SqsMapping] = []
    pages = aws.client("lambda").get_paginator("list_event_source_mappings").paginate()
    for configuration in (item for page in pages for item in page["EventSourceMappings"]):
        arn = str(configuration.get("EventSourceArn", ""))
        spec = host.resolve(str(configuration.get("FunctionArn", "")))
        if not arn.startswith("arn:aws:sqs:") or spec is None:
            continue
        _, _, _, _, account, name = arn.split(":", 5)
        url = aws.client("sqs").get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
        mappings.append(
            SqsMapping(
                uuid=str(configuration["UUID"]),
                queue_arn=arn,
                queue_url=str(url),
                function_key=spec.key,
                **_settings(configuration),
            )
        )
    return mappings


def _message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    """A message attribute as Lambda shows it (camel case, list fields always present)."""
    attribute: dict[str, Any] = {
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": str(value.get("DataType", "String")),
    }
    if "StringValue" in value:
        attribute["stringValue"] = str(value["StringValue"])
    if "BinaryValue" in value:
        raw = value["BinaryValue"]
        attribute["binaryValue"] = base64.b64encode(raw).decode() if isinstance(raw, bytes) else str(raw)
    return attribute


def sqs_event_record(message: Mapping[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """The Lambda record of one message ReceiveMessage returned (AttributeNames=All)."""
    attributes = message.get("MessageAttributes") or {}
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {name: str(value) for name, value in (message.get("Attributes") or {}).items()},
        "messageAttributes": {name: _message_attribute(value) for name, value in attributes.items()},
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def failed_message_ids(payload: Any, error: bool, batch_ids: set[str], report_failures: bool) -> set[str]:
    """The records Lambda leaves in the queue after an invocation, by its rules for SQS: all of them
    after a function error; with ReportBatchItemFailures those listed, or all if the response names
    a record that is not in the batch (or none at all); otherwise none."""
    if error:
        return set(batch_ids)
    if not report_failures or not isinstance(payload, dict) or payload.get("batchItemFailures") is None:
        return set()
    failures = payload["batchItemFailures"]
    if not isinstance(failures, list):
        return set(batch_ids)
    listed = [item.get("itemIdentifier") if isinstance(item, dict) else None for item in failures]
    if any(not isinstance(identifier, str) or identifier not in batch_ids for identifier in listed):
        return set(batch_ids)
    return {str(identifier) for identifier in listed}


class SqsPoller(Loop):
    """Lambda's poller for one mapping: collect a batch, invoke, delete what succeeded."""

    def __init__(
        self, mapping: SqsMapping, host: LambdaHost, sqs: Any, lambda_api: Any, log: LineSink
    ) -> None:
        super().__init__(f"sqs-poller {mapping.queue_name}", 0, self._step_once, log)
        self.mapping = mapping
        self.host = host
        self.sqs = sqs
        self.lambda_api = lambda_api  # moto's Lambda API, where the mapping's configuration lives
        self.log = log
        self._refreshed = time.monotonic()
        self._recent: deque[dict[str, Any]] = deque(maxlen=RECENT_BATCHES)
        self._lock = threading.Lock()

    def snapshot(self) -> dict[str, Any]:
        """The mapping and its last batches (records' ids and bodies, what was deleted or left)."""
        with self._lock:
            return {"mapping": dataclasses.asdict(self.mapping), "recent_batches": list(self._recent)}

    def _step_once(self) -> None:
        try:
            if time.monotonic() - self._refreshed >= REFRESH_SECONDS:
                self._refresh()
            if not self.mapping.enabled:
                self.stopping.wait(REFRESH_SECONDS)
                self._refresh()
                return
            batch = self._collect()
            if batch:
                self._deliver(batch)
        except Exception as exc:
            # The loop runs without a pause: a failing call (moto busy) must not spin it.
            if not self.stopping.is_set():
                self.log(f"{self.name}: {type(exc).__name__}: {exc}")
            self.stopping.wait(ERROR_BACKOFF_SECONDS)

    def _refresh(self) -> None:
        self._refreshed = time.monotonic()
        try:
            configuration = self.lambda_api.get_event_source_mapping(UUID=self.mapping.uuid)
        except self.lambda_api.exceptions.ResourceNotFoundException:
            configuration = {"State": "Deleted"}  # deleted: polls nothing (as after a disable)
        settings = _settings(configuration) if configuration.get("State") != "Deleted" else {"enabled": False}
        self.mapping = dataclasses.replace(self.mapping, **settings)

    def _collect(self) -> list[dict[str, Any]]:
        mapping = self.mapping
        messages: list[dict[str, Any]] = []
        deadline: float | None = None
        while len(messages) < mapping.batch_size and not self.stopping.is_set():
            wait = POLL_SECONDS if deadline is None else deadline - time.monotonic()
            if wait <= 0:
                break
            received = self.sqs.receive_message(
                QueueUrl=mapping.queue_url,
                MaxNumberOfMessages=min(SQS_RECEIVE_MAX, mapping.batch_size - len(messages)),
                WaitTimeSeconds=max(0, min(POLL_SECONDS, int(wait))),
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if received and deadline is None:
                deadline = time.monotonic() + mapping.window_seconds
            # A record whose visibility timeout ran out during the window comes again: once in the
            # batch, with its newest receipt handle (the only one DeleteMessage accepts).
            fresh = {str(message["MessageId"]): message for message in received}
            messages = [m for m in messages if m["MessageId"] not in fresh] + list(fresh.values())
            if deadline is None:
                return []  # nothing waiting: the next step polls again
            if mapping.window_seconds == 0:
                break
            if not received:
                self.stopping.wait(min(0.2, max(0.0, deadline - time.monotonic())))
        if self.stopping.is_set():
            return []  # not delivered: visible again after the visibility timeout, as in AWS
        return messages

    def _deliver(self, messages: Sequence[dict[str, Any]]) -> None:
        mapping = self.mapping
        event = {"Records": [sqs_event_record(m, mapping.queue_arn, mapping.region) for m in messages]}
        invocation = self._invoke(event)
        if invocation is None:
            return  # throttled until the stop, or stopping: the records come back after the timeout
        ids = {str(message["MessageId"]) for message in messages}
        failed = failed_message_ids(
            invocation.payload, invocation.error, ids, mapping.report_batch_item_failures
        )
        done = [message for message in messages if message["MessageId"] not in failed]
        for message in done:
            # One DeleteMessage each: AWS authorises DeleteMessageBatch by sqs:DeleteMessage, moto by
            # an action of its own name that the function's role (rightly) does not hold.
            self.sqs.delete_message(QueueUrl=mapping.queue_url, ReceiptHandle=message["ReceiptHandle"])
        with self._lock:
            self._recent.append(
                {
                    "records": [{"messageId": m["MessageId"], "body": m["Body"]} for m in messages],
                    "function_error": invocation.error,
                    "left_for_redelivery": sorted(failed),
                }
            )
        self.log(
            f"{mapping.queue_name} -> {self.host.specs[mapping.function_key].name}: "
            f"{len(messages)} record(s), {len(done)} deleted, {len(failed)} left for redelivery"
        )

    def _invoke(self, event: dict[str, Any]) -> Invocation | None:
        """The synchronous invocation; a throttled one is tried again (Lambda's pollers back off and
        retry while the records' visibility timeout lasts)."""
        while not self.stopping.is_set():
            try:
                return self.host.invoke(self.mapping.function_key, event)
            except TooManyRequestsError:
                self.stopping.wait(THROTTLE_BACKOFF_SECONDS)
        return None


def sqs_pollers(aws: ClientSource, moto_url: str, host: LambdaHost, log: LineSink) -> list[SqsPoller]:
    """A poller per SQS mapping of one of the host's functions, each calling SQS with that function's role."""
    pollers = []
    for mapping in read_sqs_mappings(aws, host):
        environment = host.specs[mapping.function_key].runtime_environment
        role = LocalAws(moto_url, credentials={name: environment[name] for name in ROLE_CREDENTIALS})
        pollers.append(SqsPoller(mapping, host, role.client("sqs"), aws.client("lambda"), log))
    return pollers
