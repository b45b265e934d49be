"""Events exactly as AWS delivers them to Lambda."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext as PowertoolsLambdaContext

REGION = "us-east-1"
ACCOUNT = "123456789012"
# Lambda does not verify it; the shape (base64 of an RSA signature) is what AWS sends.
SIGNATURE = (
    "EXAMPLEpH+DcEwjAPg8O9mY8dReBSwksfg2S7WKQcikcNKWLQjwu6A4VbeS0QHVCkhRS7fUQvi2egU3N858fiTDN6bkkOxYDVrY0Ad8"
    "L10Hs3zH81mtnPk5uvvolIC1CXGu43obcgFxeL3khZl8IKvO61GWB6jI9b5+gLPoBc1Q="
)


def sns_record(
    message: str | dict[str, Any], topic_arn: str, message_id: str | None = None
) -> dict[str, Any]:
    """One record of an SNS→Lambda event (Records[].Sns with the message as a JSON string)."""
    message_id = message_id or str(uuid.uuid4())
    return {
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": f"{topic_arn}:{uuid.uuid4()}",
        "Sns": {
            "Type": "Notification",
            "MessageId": message_id,
            "TopicArn": topic_arn,
            "Subject": None,
            "Message": message if isinstance(message, str) else json.dumps(message),
            "Timestamp": "2026-11-23T06:40:00.000Z",
            "SignatureVersion": "1",
            "Signature": SIGNATURE,
            "SigningCertUrl": f"https://sns.{REGION}.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem",
            "UnsubscribeUrl": f"https://sns.{REGION}.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={topic_arn}:x",
            "MessageAttributes": {},
        },
    }


def sns_event(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}


def batch_state_change(
    *,
    job_name: str,
    job_id: str,
    job_queue: str,
    status: str,
    status_reason: str,
    environment: dict[str, str],
    attempts: list[dict[str, Any]],
    array_properties: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An EventBridge "Batch Job State Change" event (detail is the DescribeJobs job shape)."""
    log_stream = attempts[-1]["container"]["logStreamName"] if attempts else None
    container: dict[str, Any] = {
        "image": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/gpu-faces-gpu:latest",
        "command": ["python", "-m", "gpu_app.batch", "run-script"],
        "volumes": [],
        "environment": [{"name": name, "value": value} for name, value in environment.items()],
        "mountPoints": [],
        "ulimits": [],
        "resourceRequirements": [{"value": "4", "type": "VCPU"}, {"value": "16384", "type": "MEMORY"}],
        "networkInterfaces": [],
        "secrets": [],
    }
    if attempts:
        container |= {
            "exitCode": attempts[-1]["container"].get("exitCode"),
            "containerInstanceArn": attempts[-1]["container"]["containerInstanceArn"],
            "taskArn": attempts[-1]["container"]["taskArn"],
            "logStreamName": log_stream,
        }
    detail: dict[str, Any] = {
        "jobArn": f"arn:aws:batch:{REGION}:{ACCOUNT}:job/{job_id}",
        "jobName": job_name,
        "jobId": job_id,
        "jobQueue": job_queue,
        "status": status,
        "attempts": attempts,
        "statusReason": status_reason,
        "createdAt": 1764000000000,
        "retryStrategy": {"attempts": 2, "evaluateOnExit": []},
        "startedAt": 1764000060000,
        "stoppedAt": 1764003723000,
        "dependsOn": [],
        "jobDefinition": f"arn:aws:batch:{REGION}:{ACCOUNT}:job-definition/gpu-faces-script-gpu:1",
        "parameters": {},
        "container": container,
        "tags": {},
        "propagateTags": False,
        "platformCapabilities": ["EC2"],
    }
    if array_properties is not None:
        detail["arrayProperties"] = array_properties
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Batch Job State Change",
        "source": "aws.batch",
        "account": ACCOUNT,
        "time": "2026-11-23T07:42:03Z",
        "region": REGION,
        "resources": [f"arn:aws:batch:{REGION}:{ACCOUNT}:job/{job_id}"],
        "detail": detail,
    }


def attempt(exit_code: int, reason: str, log_stream: str) -> dict[str, Any]:
    return {
        "container": {
            "containerInstanceArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:container-instance/{uuid.uuid4()}",
            "taskArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/{uuid.uuid4()}",
            "exitCode": exit_code,
            "reason": reason,
            "logStreamName": log_stream,
            "networkInterfaces": [],
        },
        "startedAt": 1764000060000,
        "stoppedAt": 1764003723000,
        "statusReason": "Essential container in task exited",
    }


class LambdaContext(PowertoolsLambdaContext):
    """What the Lambda runtime passes (the attributes Powertools reads), of the type handlers take."""

    def __init__(
        self,
        function_name: str = "dispatcher",
        memory_limit_in_mb: int = 256,
        invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:dispatcher",
        remaining_millis: int = 300_000,
        log_group_name: str = "/aws/lambda/dispatcher",
        log_stream_name: str = "2026/11/23/[$LATEST]0123456789abcdef",
    ) -> None:
        self._function_name = function_name
        self._function_version = "$LATEST"
        self._memory_limit_in_mb = memory_limit_in_mb
        self._invoked_function_arn = invoked_function_arn
        self._aws_request_id = str(uuid.uuid4())
        self._log_group_name = log_group_name
        self._log_stream_name = log_stream_name
        self.remaining_millis = remaining_millis

    # Powertools declares it a staticmethod; the runtime's (and this) is a method of the context.
    def get_remaining_time_in_millis(self) -> int:  # type: ignore[override]
        return self.remaining_millis


def sqs_record(body: str | dict[str, Any], queue_arn: str, message_id: str | None = None) -> dict[str, Any]:
    """One record of an SQS→Lambda event (an event source mapping's batch), as AWS shapes it."""
    text = body if isinstance(body, str) else json.dumps(body)
    return {
        "messageId": message_id or str(uuid.uuid4()),
        "receiptHandle": f"AQEB{uuid.uuid4().hex}",
        "body": text,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1764460800000",
            "SenderId": "AIDAIENQZJOLO23YVJ4VO",
            "ApproximateFirstReceiveTimestamp": "1764460800002",
        },
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(text.encode()).hexdigest(),  # noqa: S324 - SQS's own checksum
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }
