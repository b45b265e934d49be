"""The dead-letter path for messages that can never succeed: recorded with their reason, not retried."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Final

from lambdas.common.aws import client
from lambdas.common.validation import InvalidMessageError

# SQS takes 256 KiB per message, body and attributes together; the record stays well under it.
MAX_RECORD_BYTES: Final = 240 * 1024
_ATTRIBUTE_LIMIT = 1024  # keeps the reason readable in the console; the body has it in full


def _serialised(body: dict[str, Any]) -> str:
    # ASCII JSON: every byte counted by len(), unpaired surrogates and controls written as escapes.
    return json.dumps(body)


def capped_record(error: InvalidMessageError, message_id: str, original: str) -> str:
    """The record's JSON, at most MAX_RECORD_BYTES: the original is cut to fit (escapes can make a
    64 KiB message six times larger), and its size and sha256 identify it whatever was cut."""
    encoded = original.encode("utf-8", "surrogatepass")
    body: dict[str, Any] = {
        "reason": error.reason,
        "error_type": error.error_type,
        "function": "dispatcher",
        "message_id": message_id,
        "original": original,
        "original_truncated": False,
        "original_bytes": len(encoded),
        "original_sha256": hashlib.sha256(encoded).hexdigest(),
    }
    text = _serialised(body)
    if len(text) <= MAX_RECORD_BYTES:
        return text
    body["original_truncated"] = True
    low, high = 0, len(original)  # the longest prefix that fits: found in ~17 serialisations
    while low < high:
        middle = (low + high + 1) // 2
        body["original"] = original[:middle]
        if len(_serialised(body)) <= MAX_RECORD_BYTES:
            low = middle
        else:
            high = middle - 1
    body["original"] = original[:low]
    return _serialised(body)


def dead_letter(queue_url: str, error: InvalidMessageError, message_id: str, original: str) -> str:
    """Send the record (`reason`, `error_type`, `function`, `message_id`, `original`,
    `original_truncated`, `original_bytes`, `original_sha256`) to the queue; returns its id."""
    attributes = {
        "reason": error.reason[:_ATTRIBUTE_LIMIT],
        "error_type": error.error_type,
        "function": "dispatcher",
    }
    response = client("sqs").send_message(
        QueueUrl=queue_url,
        MessageBody=capped_record(error, message_id, original),
        MessageAttributes={
            name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()
        },
    )
    return str(response["MessageId"])
