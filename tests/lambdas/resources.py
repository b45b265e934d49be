"""The AWS resources the Lambda functions use, created through boto3 against whatever endpoint
AWS_ENDPOINT_URL names (moto here; the local stack's bootstrap can reuse `create_stack`).

`Stack.environment(function)` gives each function exactly the variables `lambdas/common/env.py`
declares for it, so tests and the local stack configure the functions the way Terraform does.
"""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from typing import Any

import boto3

from lambdas.common import env

ASSUME_ROLE_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": ["batch.amazonaws.com", "lambda.amazonaws.com"]},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)
API_KEY = "local-test-api-key"
GPU_INSTANCE_TYPE = "g5.xlarge"
# moto accepts any AMI id; looking one up (DescribeImages) costs seconds per test.
AMI_ID = "ami-0123456789abcdef0"


@dataclasses.dataclass(frozen=True)
class Stack:
    name: str
    input_bucket: str
    output_bucket: str
    gpu_queue: str
    cpu_queue: str
    script_definition_gpu: str
    script_definition_cpu: str
    embed_definition_gpu: str
    embed_definition_cpu: str
    idempotency_table: str
    dead_letter_queue_url: str
    notifications_topic_arn: str
    notifications_queue_url: str
    instance_id: str
    api_key_parameter: str
    controller_function_name: str

    def environment(self, function: str, **overrides: str) -> dict[str, str]:
        """The variables env.py declares for `function`: this stack's values, else env.py's defaults."""
        values = {
            "POWERTOOLS_SERVICE_NAME": f"{self.name}-{function}",
            "ML_INPUT_BUCKET": self.input_bucket,
            "ML_OUTPUT_BUCKET": self.output_bucket,
            "GPU_JOB_QUEUE": self.gpu_queue,
            "CPU_JOB_QUEUE": self.cpu_queue,
            "SCRIPT_JOB_DEFINITION_GPU": self.script_definition_gpu,
            "SCRIPT_JOB_DEFINITION_CPU": self.script_definition_cpu,
            "EMBED_JOB_DEFINITION_GPU": self.embed_definition_gpu,
            "EMBED_JOB_DEFINITION_CPU": self.embed_definition_cpu,
            "CONTROLLER_FUNCTION_NAME": self.controller_function_name,
            "IDEMPOTENCY_TABLE": self.idempotency_table,
            "DEAD_LETTER_QUEUE_URL": self.dead_letter_queue_url,
            "GPU_INSTANCE_ID": self.instance_id,
            "API_KEY_PARAMETER": self.api_key_parameter,
            "NOTIFICATIONS_TOPIC_ARN": self.notifications_topic_arn,
        } | overrides
        declared = env.FUNCTION_ENVIRONMENT[function]
        unknown = set(overrides) - set(declared)
        if unknown:
            raise KeyError(f"{function} does not read {sorted(unknown)}")
        result = {name: values.get(name, default) for name, default in declared.items()}
        missing = [name for name, value in result.items() if value is None]
        if missing:
            raise KeyError(f"no value for required {function} variables {missing}")
        return {name: str(value) for name, value in result.items()}


def _zip_with(name: str, text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, text)
    return buffer.getvalue()


def _create_batch(session: boto3.session.Session, name: str, role_arn: str) -> dict[str, str]:
    batch = session.client("batch")
    environment = batch.create_compute_environment(
        computeEnvironmentName=f"{name}-ce",
        type="UNMANAGED",
        state="ENABLED",
        serviceRole=role_arn,
    )["computeEnvironmentArn"]
    queues = {}
    for kind in ("gpu", "cpu"):
        queues[kind] = batch.create_job_queue(
            jobQueueName=f"{name}-{kind}",
            state="ENABLED",
            priority=1,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment}],
        )["jobQueueArn"]
    definitions = {}
    for job, command in (("script", "run-script"), ("embed", "embed")):
        for kind in ("gpu", "cpu"):
            requirements = [{"type": "VCPU", "value": "2"}, {"type": "MEMORY", "value": "4096"}]
            if kind == "gpu":
                requirements.append({"type": "GPU", "value": "1"})
            definitions[f"{job}_{kind}"] = batch.register_job_definition(
                jobDefinitionName=f"{name}-{job}-{kind}",
                type="container",
                containerProperties={
                    "image": f"123456789012.dkr.ecr.us-east-1.amazonaws.com/{name}-{kind}:latest",
                    "command": ["python", "-m", "gpu_app.batch", command],
                    "resourceRequirements": requirements,
                },
            )["jobDefinitionArn"]
    return {"gpu_queue": queues["gpu"], "cpu_queue": queues["cpu"]} | {
        f"{job}_definition_{kind}": definitions[f"{job}_{kind}"]
        for job in ("script", "embed")
        for kind in ("gpu", "cpu")
    }


def create_stack(name: str = "gpu-faces", session: boto3.session.Session | None = None) -> Stack:
    """Create every resource the four functions use and return their names."""
    session = session or boto3.session.Session()
    iam, ec2, s3 = session.client("iam"), session.client("ec2"), session.client("s3")
    sqs, sns = session.client("sqs"), session.client("sns")

    role_arn = iam.create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument=ASSUME_ROLE_POLICY)["Role"][
        "Arn"
    ]
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName=f"{name}-sg", Description="gpu app", VpcId=vpc)["GroupId"]
    instance_id = ec2.run_instances(
        ImageId=AMI_ID,
        InstanceType=GPU_INSTANCE_TYPE,
        MinCount=1,
        MaxCount=1,
        SubnetId=subnet,
        SecurityGroupIds=[group],
    )["Instances"][0]["InstanceId"]

    buckets = {kind: f"{name}-{kind}" for kind in ("input", "output")}
    for bucket in buckets.values():
        s3.create_bucket(Bucket=bucket)

    table = f"{name}-idempotency"
    dynamodb = session.client("dynamodb")
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.update_time_to_live(
        TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"}
    )

    dead_letter_url = sqs.create_queue(QueueName=f"{name}-dispatcher-dlq")["QueueUrl"]
    topic = sns.create_topic(Name=f"{name}-notifications")["TopicArn"]
    inbox_url = sqs.create_queue(QueueName=f"{name}-notifications-inbox")["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=inbox_arn)

    parameter = f"/{name}/api-key"
    session.client("ssm").put_parameter(Name=parameter, Value=API_KEY, Type="SecureString")

    controller = f"{name}-controller"
    session.client("lambda").create_function(
        FunctionName=controller,
        Runtime="python3.12",
        Role=role_arn,
        Handler="lambdas.controller.handler.lambda_handler",
        Code={"ZipFile": _zip_with("index.py", "def handler(event, context):\n    return event\n")},
    )

    return Stack(
        name=name,
        input_bucket=buckets["input"],
        output_bucket=buckets["output"],
        idempotency_table=table,
        dead_letter_queue_url=dead_letter_url,
        notifications_topic_arn=topic,
        notifications_queue_url=inbox_url,
        instance_id=instance_id,
        api_key_parameter=parameter,
        controller_function_name=controller,
        **_create_batch(session, name, role_arn),
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
