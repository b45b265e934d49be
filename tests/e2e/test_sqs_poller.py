"""Lambda's rules for an SQS batch, as the local pollers apply them (local_stack/event_sources.py)."""

from __future__ import annotations

import hashlib

import pytest

from local_stack.event_sources import failed_message_ids, sqs_event_record

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
