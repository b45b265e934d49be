"""Lambda's rules for an SQS batch, as the local pollers apply them (local_stack/event_sources.py)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from local_stack.event_sources import (
    SqsPoller,
    failed_message_ids,
    read_sqs_mappings,
    sqs_event_record,
)
from local_stack.host import Invocation
from local_stack.local_aws import REPO, LocalAws
from tests.e2e.test_local_parts import _session, _zip
from tests.support.moto_server import free_port, wait_http

BATCH = {"m1", "m2", "m3"}


@pytest.mark.parametrize(
    ("payload", "error", "report", "left"),
    [
        ({"batchItemFailures": [{"itemIdentifier": "m2"}]}, False, True, {"m2"}),
        ({"batchItemFailures": []}, False, True, set()),
        ({"results": []}, False, True, set()),
        (None, False, True, set()),
        # A function error, or a response naming a record not in the batch: the whole batch stays.
        ({"errorMessage": "boom"}, True, True, BATCH),
        ({"batchItemFailures": [{"itemIdentifier": "elsewhere"}]}, False, True, BATCH),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, False, True, BATCH),
        ({"batchItemFailures": [{"id": "m1"}]}, False, True, BATCH),
        ({"batchItemFailures": "m1"}, False, True, BATCH),
        # Without ReportBatchItemFailures the response is not read: a success deletes everything.
        ({"batchItemFailures": [{"itemIdentifier": "m2"}]}, False, False, set()),
    ],
)
def test_records_left_for_redelivery(payload: object, error: bool, report: bool, left: set[str]) -> None:
    assert failed_message_ids(payload, error, BATCH, report) == left


def test_record_has_the_fields_lambda_sends() -> None:
    body = '{"Records": []}'
    message = {
        "MessageId": "m1",
        "ReceiptHandle": "handle",
        "MD5OfBody": hashlib.md5(body.encode()).hexdigest(),  # noqa: S324 - SQS's own checksum
        "Body": body,
        "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1764460800000"},
        "MessageAttributes": {"kind": {"DataType": "String", "StringValue": "upload"}},
    }
    record = sqs_event_record(message, "arn:aws:sqs:us-east-1:123456789012:q", "us-east-1")
    assert record == {
        "messageId": "m1",
        "receiptHandle": "handle",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1764460800000"},
        "messageAttributes": {
            "kind": {
                "stringValue": "upload",
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "String",
            }
        },
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
        "awsRegion": "us-east-1",
    }


# --- against moto as the stack runs it -----------------------------------------------------------------
@pytest.fixture(scope="module")
def stack_moto() -> Iterator[str]:
    """`python -m local_stack.moto_server` with IAM enforcement on, as the stack runs it."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {"PYTHONPATH": str(REPO), "INITIAL_NO_AUTH_ACTION_COUNT": "0"}
    process = subprocess.Popen(
        [sys.executable, "-m", "local_stack.moto_server", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/moto-api/")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


class _Function:
    """The Lambda host's side of a poller (a stand-in for LambdaHost): answers each invocation with
    a partial batch response that lists the records whose body is in `fail`."""

    def __init__(self, fail: set[str]) -> None:
        self.fail = fail
        self.events: list[dict[str, Any]] = []
        self.specs = {"dispatcher": SimpleNamespace(key="dispatcher", name="poller-window")}

    def resolve(self, identifier: str) -> SimpleNamespace | None:
        spec = self.specs["dispatcher"]
        return spec if identifier.endswith(f":function:{spec.name}") else None

    def invoke(self, key: str, event: dict[str, Any]) -> Invocation:
        self.events.append(event)
        records = event["Records"]
        failures = [{"itemIdentifier": r["messageId"]} for r in records if r["body"] in self.fail]
        return Invocation(request_id="r", payload={"batchItemFailures": failures}, error=False)


def _mapped_queue(moto_url: str, name: str, window: int) -> tuple[Any, str, str]:
    """A queue (1 s visibility timeout, shorter than a window: records come back during it) mapped to
    a function by an event source mapping."""
    operator = _session()
    iam = operator.client("iam", endpoint_url=moto_url)
    lambda_ = operator.client("lambda", endpoint_url=moto_url)
    sqs = operator.client("sqs", endpoint_url=moto_url)
    trust = {
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ]
    }
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    function = lambda_.create_function(
        FunctionName=name,
        Role=role,
        Runtime="python3.12",
        Handler="h.h",
        Code={"ZipFile": _zip({"h.py": "def h(e, c):\n    return e\n"})},
    )["FunctionArn"]
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "1"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    uuid = lambda_.create_event_source_mapping(
        EventSourceArn=arn,
        FunctionName=function,
        BatchSize=100,
        MaximumBatchingWindowInSeconds=window,
        FunctionResponseTypes=["ReportBatchItemFailures"],
    )["UUID"]
    return sqs, url, uuid


def test_moto_keeps_the_mapping_but_leaves_the_messages_to_the_pollers(
    stack_moto: str,
) -> None:
    """moto would hand the message to its own Lambda at once and delete it; the poller must get it."""
    sqs, url, _ = _mapped_queue(stack_moto, "moto-keeps", window=0)
    sqs.send_message(QueueUrl=url, MessageBody="upload")
    time.sleep(0.5)
    (message,) = sqs.receive_message(QueueUrl=url, AttributeNames=["All"], WaitTimeSeconds=1)["Messages"]
    assert (message["Body"], message["Attributes"]["ApproximateReceiveCount"]) == ("upload", "1")


def test_mappings_are_listed_by_function_name_or_arn(stack_moto: str) -> None:
    """The RUNBOOK lists the S3 event mapping by the dispatcher's name; Terraform made it with the ARN."""
    _mapped_queue(stack_moto, "listed-by-name", window=0)
    lambda_ = _session().client("lambda", endpoint_url=stack_moto)
    arn = lambda_.get_function(FunctionName="listed-by-name")["Configuration"]["FunctionArn"]
    for identifier in ("listed-by-name", arn):
        mappings = lambda_.list_event_source_mappings(FunctionName=identifier)["EventSourceMappings"]
        assert [mapping["FunctionArn"] for mapping in mappings] == [arn], identifier
    assert lambda_.list_event_source_mappings(FunctionName="moto-keeps-not")["EventSourceMappings"] == []


def test_a_queue_shows_its_redrive_allow_policy(stack_moto: str) -> None:
    """Terraform reads back the S3 event DLQ's RedriveAllowPolicy after setting it (moto refuses to)."""
    sqs = _session().client("sqs", endpoint_url=stack_moto)
    plain = sqs.create_queue(QueueName="no-redrive-allow")["QueueUrl"]
    url = sqs.create_queue(QueueName="redrive-allow")["QueueUrl"]
    policy = json.dumps(
        {"redrivePermission": "byQueue", "sourceQueueArns": ["arn:aws:sqs:us-east-1:123456789012:events"]}
    )
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"RedriveAllowPolicy": policy})
    answer = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedriveAllowPolicy"])
    assert answer["Attributes"] == {"RedriveAllowPolicy": policy}
    everything = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert everything["RedriveAllowPolicy"] == policy
    everything = sqs.get_queue_attributes(QueueUrl=plain, AttributeNames=["All"])["Attributes"]
    assert "RedriveAllowPolicy" not in everything
    # Cleared as Terraform's destroy clears it, it is gone (the provider waits until it is).
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"RedriveAllowPolicy": ""})
    answer = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedriveAllowPolicy"])
    assert "RedriveAllowPolicy" not in answer.get("Attributes", {})


def test_a_poller_batches_the_window_and_leaves_only_the_failed_records(
    stack_moto: str,
) -> None:
    sqs, url, uuid = _mapped_queue(stack_moto, "poller-window", window=2)
    function = _Function(fail={"b"})
    (mapping,) = [
        mapping
        for mapping in read_sqs_mappings(LocalAws(stack_moto), function)  # type: ignore[arg-type]
        if mapping.uuid == uuid
    ]
    assert (mapping.batch_size, mapping.window_seconds, mapping.report_batch_item_failures) == (100, 2, True)
    poller = SqsPoller(mapping, function, sqs, sqs, lambda line: None)  # type: ignore[arg-type]
    for body in ("a", "b", "c"):
        sqs.send_message(QueueUrl=url, MessageBody=body)

    poller._step_once()

    ((event),) = function.events
    assert sorted(record["body"] for record in event["Records"]) == ["a", "b", "c"]
    # "a" and "c" are deleted (with their newest receipt handles); "b" is back, received once more.
    time.sleep(1.5)
    (again,) = sqs.receive_message(
        QueueUrl=url, AttributeNames=["All"], MaxNumberOfMessages=10, WaitTimeSeconds=2
    )["Messages"]
    assert again["Body"] == "b" and int(again["Attributes"]["ApproximateReceiveCount"]) >= 2
    assert poller.snapshot()["recent_batches"][0]["left_for_redelivery"] == [
        record["messageId"] for record in event["Records"] if record["body"] == "b"
    ]
