"""The dead-letter path for messages that can never succeed: recorded with their reason, not retried."""

from __future__ import annotations

import json

from lambdas.common.aws import client
from lambdas.common.models import MAX_MESSAGE_BYTES
from lambdas.common.validation import InvalidMessageError

_ATTRIBUTE_LIMIT = 1024  # keeps the reason readable in the console; the body has it in full


def dead_letter(queue_url: str, error: InvalidMessageError, message_id: str, original: str) -> str:
    """Send `{"reason", "error_type", "function", "message_id", "original"}` to the queue; returns its id."""
    encoded = original.encode("utf-8")
    truncated = len(encoded) > MAX_MESSAGE_BYTES
    body = {
        "reason": error.reason,
        "error_type": error.error_type,
        "function": "dispatcher",
        "message_id": message_id,
        # An oversized original is cut so the record itself always fits in an SQS message.
        "original": encoded[:MAX_MESSAGE_BYTES].decode("utf-8", "ignore") if truncated else original,
        "original_truncated": truncated,
    }
    attributes = {
        "reason": error.reason[:_ATTRIBUTE_LIMIT],
        "error_type": error.error_type,
        "function": "dispatcher",
    }
    response = client("sqs").send_message(
        QueueUrl=queue_url,
        MessageBody=json.dumps(body),
        MessageAttributes={
            name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()
        },
    )
    return str(response["MessageId"])
