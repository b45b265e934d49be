"""The AWS resources the Lambda functions use, created by tests/support/stack_resources.py
(names from terraform/naming.json) against whatever endpoint
AWS_ENDPOINT_URL names (moto here).

`Stack.environment(function)` gives each function exactly the variables `lambdas/common/env.py`
declares for it, valued as Terraform's lambda module sets them.
"""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from typing import Any

import boto3

from tests.support.stack_resources import Resources, create_resources

API_KEY = "local-test-api-key"
# Not Terraform's default type: the fallback tests switch to g4dn.xlarge, which must differ from it.
GPU_INSTANCE_TYPE = "g5.xlarge"


@dataclasses.dataclass(frozen=True)
class Stack:
    """The bootstrap's resources as the tests use them: queues and job definitions by ARN (as
    DescribeJobs reports them), plus the moto-side controller function the dispatcher invokes."""

    resources: Resources
    name: str
    input_bucket: str
    output_bucket: str
    gpu_queue: str
    cpu_queue: str
    script_definition_gpu: str
    script_definition_cpu: str
    embed_definition_gpu: str
    embed_definition_cpu: str
    dead_letter_queue_url: str
    notifications_topic_arn: str
    notifications_queue_url: str
    instance_id: str
    api_key_parameter: str
    controller_function_name: str

    def environment(self, function: str, **overrides: str) -> dict[str, str]:
        """The variables env.py declares for `function`: this stack's values, else env.py's defaults."""
        return self.resources.function_environment(function, **overrides)


def _zip_with(name: str, text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, text)
    return buffer.getvalue()


def create_stack(session: boto3.session.Session | None = None) -> Stack:
    """Every resource the four functions use, with the instance left running (the tests stop it)."""
    session = session or boto3.session.Session()
    resources = create_resources(
        session,
        api_key=API_KEY,
        instance_type=GPU_INSTANCE_TYPE,
        # The controller tests read the instance's private IP in this subnet.
        vpc_cidr="10.0.0.0/16",
        instance_subnet_cidr="10.0.1.0/24",
        stop_after_first_boot=False,
    )
    # The dispatcher's InvokeFunction reaches moto in these tests (the local stack sends it to its
    # Lambda host instead), so the controller must exist there; moto only echoes without Docker.
    iam = session.client("iam")
    role_arn = iam.create_role(
        RoleName=f"{resources.names['name_prefix']}-controller",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )["Role"]["Arn"]
    controller = resources.function_names["controller"]
    session.client("lambda").create_function(
        FunctionName=controller,
        Runtime="python3.12",
        Role=role_arn,
        Handler="lambdas.controller.handler.lambda_handler",
        Code={"ZipFile": _zip_with("index.py", "def handler(event, context):\n    return event\n")},
    )
    definitions = resources.job_definition_arns
    return Stack(
        resources=resources,
        name=resources.names["name_prefix"],
        input_bucket=resources.input_bucket,
        output_bucket=resources.output_bucket,
        gpu_queue=resources.job_queue_arns["gpu"],
        cpu_queue=resources.job_queue_arns["cpu"],
        script_definition_gpu=definitions["script_runner_gpu"],
        script_definition_cpu=definitions["script_runner_cpu"],
        embed_definition_gpu=definitions["face_embedding_gpu"],
        embed_definition_cpu=definitions["face_embedding_cpu"],
        dead_letter_queue_url=resources.trigger_dlq_url,
        notifications_topic_arn=resources.notifications_topic_arn,
        notifications_queue_url=resources.notifications_local_queue_url,
        instance_id=resources.instance_id,
        api_key_parameter=resources.api_key_parameter,
        controller_function_name=controller,
    )


def receive_all(queue_url: str, session: boto3.session.Session | None = None) -> list[dict[str, Any]]:
    """Every message now in the queue (with attributes), deleted as read."""
    sqs = (session or boto3.session.Session()).client("sqs")
    messages: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=0
        ).get("Messages", [])
        if not batch:
            return messages
        messages.extend(batch)
        for message in batch:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def notifications(stack: Stack) -> list[dict[str, Any]]:
    """The SNS envelopes (Subject, Message, MessageAttributes) delivered to the topic's SQS inbox."""
    return [json.loads(message["Body"]) for message in receive_all(stack.notifications_queue_url)]
