"""The events AWS hands to the functions, built from what the local stack observes.

- SNS -> Lambda: the notification SNS delivers to an SQS subscription (raw delivery off) becomes the
  `Records[].Sns` record Lambda receives (`SigningCertURL` -> `SigningCertUrl`, `Subject: null` when
  absent, message attributes as `{"Type", "Value"}`).
- EventBridge schedule -> Lambda: the "Scheduled Event" of a rule.
- Batch -> EventBridge -> Lambda: a "Batch Job State Change" whose detail is the job as DescribeJobs
  shows it.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sns_attribute(value: Mapping[str, Any]) -> dict[str, str]:
    """One message attribute as Lambda shows it, from either SNS's JSON or SQS's attribute shape."""
    if "Type" in value:
        return {"Type": str(value["Type"]), "Value": str(value.get("Value", ""))}
    data_type = str(value.get("DataType", "String"))
    if "BinaryValue" in value:
        raw = value["BinaryValue"]
        encoded = base64.b64encode(raw).decode() if isinstance(raw, bytes) else str(raw)
        return {"Type": data_type, "Value": encoded}
    return {"Type": data_type, "Value": str(value.get("StringValue", ""))}


def sns_record(notification: Mapping[str, Any], subscription_arn: str) -> dict[str, Any]:
    """The Lambda record of one SNS notification (the JSON body SNS puts in an SQS message)."""
    if notification.get("Type") != "Notification" or "Message" not in notification:
        raise ValueError("not an SNS notification")
    return {
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": subscription_arn,
        "Sns": {
            "Type": "Notification",
            "MessageId": notification["MessageId"],
            "TopicArn": notification["TopicArn"],
            "Subject": notification.get("Subject"),
            "Message": notification["Message"],
            "Timestamp": notification["Timestamp"],
            "SignatureVersion": notification.get("SignatureVersion", "1"),
            "Signature": notification.get("Signature", ""),
            "SigningCertUrl": notification.get("SigningCertURL", notification.get("SigningCertUrl", "")),
            "UnsubscribeUrl": notification.get("UnsubscribeURL", notification.get("UnsubscribeUrl", "")),
            "MessageAttributes": {
                name: sns_attribute(value)
                for name, value in (notification.get("MessageAttributes") or {}).items()
            },
        },
    }


def scheduled_event(rule_arn: str, account_id: str, region: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account_id,
        "time": _now(),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    }


def batch_state_change(detail: Mapping[str, Any], account_id: str, region: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Batch Job State Change",
        "source": "aws.batch",
        "account": account_id,
        "time": _now(),
        "region": region,
        "resources": [detail["jobArn"]],
        "detail": dict(detail),
    }
