"""Notifications on the SNS topic (e-mail subscribers read Subject and Message)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from lambdas.common.aws import client

_SUBJECT_LIMIT = 100  # SNS: ASCII, no line breaks, at most 100 characters


def subject_line(text: str) -> str:
    ascii_text = text.encode("ascii", "replace").decode("ascii")
    single_line = re.sub(r"[\x00-\x1f\x7f]+", " ", ascii_text).strip()
    return single_line if len(single_line) <= _SUBJECT_LIMIT else single_line[: _SUBJECT_LIMIT - 3] + "..."


def publish(topic_arn: str, subject: str, body: str, attributes: Mapping[str, str] | None = None) -> str:
    """Publish and return the SNS MessageId; attributes let subscribers filter (e.g. on status)."""
    response = client("sns").publish(
        TopicArn=topic_arn,
        Subject=subject_line(subject),
        Message=body,
        MessageAttributes={
            name: {"DataType": "String", "StringValue": value}
            for name, value in (attributes or {}).items()
            if value
        },
    )
    return str(response["MessageId"])
