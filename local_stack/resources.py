"""What Terraform created in moto, read back: `terraform output -json` plus moto's own answers.

Nothing here creates the stack's resources (Terraform does); the local stack acts on what this finds:
- the functions (`FunctionConfig`): name, handler, environment, role, timeout, memory, dead-letter
  queue and asynchronous retries, from moto's Lambda (GetFunctionConfiguration,
  GetFunctionEventInvokeConfig);
- the EventBridge rules and their targets (`Route`): the Batch state-change pattern and the
  idle-check schedule, from moto's EventBridge (ListRules, ListTargetsByRule);
- the job queues' compute environments (DescribeJobQueues), the GPU instance's role (its instance
  profile) and the app container's variables (the `-e` options of the instance's user data).
One resource exists only locally: `<prefix>-notifications-local`, an SQS queue subscribed to the
notifications topic, which stands in for the e-mail subscriptions (read it with `aws sqs
receive-message`).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import shlex
from collections.abc import Mapping
from typing import Any, Final

from local_stack.local_aws import ClientSource

NOTIFICATIONS_LOCAL_SUFFIX: Final = "-notifications-local"


@dataclasses.dataclass(frozen=True)
class FunctionConfig:
    key: str  # dispatcher | controller | monitor | idle_stopper (terraform output lambda_function_names)
    name: str
    arn: str
    handler: str
    role_arn: str
    timeout: int
    memory: int
    environment: Mapping[str, str]
    dead_letter_queue_url: str
    async_retries: int


@dataclasses.dataclass(frozen=True)
class Route:
    """An EventBridge rule with a Lambda target: a schedule, or a pattern on events."""

    rule_arn: str
    function_key: str
    schedule: str | None
    pattern: Mapping[str, Any] | None

    def matches(self, event: Mapping[str, Any]) -> bool:
        return self.pattern is not None and _matches(self.pattern, event)


def _matches(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """EventBridge's matching for exact values: every pattern key's list holds the event's value."""
    for key, wanted in pattern.items():
        value = event.get(key)
        if isinstance(wanted, Mapping):
            if not isinstance(value, Mapping) or not _matches(wanted, value):
                return False
        elif value not in wanted:
            return False
    return True


@dataclasses.dataclass(frozen=True)
class Resources:
    outputs: Mapping[str, Any]
    account_id: str
    region: str
    functions: Mapping[str, FunctionConfig]
    routes: tuple[Route, ...]
    compute_environments: Mapping[str, str]  # job queue name -> compute environment name
    instance_role_arn: str
    instance_app_environment: Mapping[str, str]
    stop_after_first_boot: bool
    instance_log_stream: tuple[str, str]  # (log group, stream) the awslogs driver writes the app's output to
    notifications_local_queue_url: str

    def output(self, name: str) -> str:
        return str(self.outputs[name])

    @property
    def name_prefix(self) -> str:
        return self.output("ml_input_bucket").split("-ml-input-")[0]

    @property
    def input_bucket(self) -> str:
        return self.output("ml_input_bucket")

    @property
    def output_bucket(self) -> str:
        return self.output("ml_output_bucket")

    @property
    def models_bucket(self) -> str:
        return self.output("models_bucket")

    @property
    def trigger_topic_arn(self) -> str:
        return self.output("trigger_events_topic_arn")

    @property
    def notifications_topic_arn(self) -> str:
        return self.output("notifications_topic_arn")

    @property
    def trigger_dlq_url(self) -> str:
        return self.output("trigger_dlq_url")

    @property
    def monitor_dlq_url(self) -> str:
        return self.output("monitor_dlq_url")

    @property
    def instance_id(self) -> str:
        return self.output("gpu_instance_id")

    @property
    def api_key_parameter(self) -> str:
        return self.output("api_key_parameter_name")

    @property
    def batch_log_group(self) -> str:
        return self.output("batch_log_group_name")

    @property
    def job_queues(self) -> dict[str, str]:
        """gpu / cpu -> job queue name."""
        return {kind: self.output(f"{kind}_job_queue") for kind in ("gpu", "cpu")}

    @property
    def function_names(self) -> dict[str, str]:
        return {key: function.name for key, function in self.functions.items()}

    def routes_for(self, event: Mapping[str, Any]) -> list[Route]:
        return [route for route in self.routes if route.matches(event)]


def _queue_url(sqs: Any, arn: str) -> str:
    return str(sqs.get_queue_url(QueueName=arn.rsplit(":", 1)[-1])["QueueUrl"])


def read_functions(aws: ClientSource, names: Mapping[str, str]) -> dict[str, FunctionConfig]:
    lambda_, sqs = aws.client("lambda"), aws.client("sqs")
    functions = {}
    for key, name in names.items():
        config = lambda_.get_function_configuration(FunctionName=name)
        invoke = lambda_.get_function_event_invoke_config(FunctionName=name)
        functions[key] = FunctionConfig(
            key=key,
            name=name,
            arn=str(config["FunctionArn"]),
            handler=str(config["Handler"]),
            role_arn=str(config["Role"]),
            timeout=int(config["Timeout"]),
            memory=int(config["MemorySize"]),
            environment=dict((config.get("Environment") or {}).get("Variables") or {}),
            dead_letter_queue_url=_queue_url(sqs, config["DeadLetterConfig"]["TargetArn"]),
            async_retries=int(invoke.get("MaximumRetryAttempts", 2)),
        )
    return functions


def read_routes(aws: ClientSource, functions: Mapping[str, FunctionConfig]) -> tuple[Route, ...]:
    events = aws.client("events")
    by_arn = {function.arn: key for key, function in functions.items()}
    routes = []
    for rule in events.list_rules()["Rules"]:
        for target in events.list_targets_by_rule(Rule=rule["Name"])["Targets"]:
            key = by_arn.get(str(target["Arn"]).removesuffix(":$LATEST"))
            if key is None:
                continue
            pattern = json.loads(rule["EventPattern"]) if rule.get("EventPattern") else None
            routes.append(Route(str(rule["Arn"]), key, rule.get("ScheduleExpression"), pattern))
    return tuple(routes)


def container_environment(user_data: str) -> dict[str, str]:
    """The `-e 'NAME=value'` options of the `docker run` in the instance's user data."""
    variables = {}
    for line in user_data.splitlines():
        stripped = line.strip()
        if stripped.startswith("-e '"):
            option = shlex.split(stripped.removesuffix("\\").strip())
            name, _, value = option[1].partition("=")
            variables[name] = value
    return variables


def user_data_constant(user_data: str, name: str) -> str:
    """A `readonly NAME='value'` line of the user data script."""
    match = re.search(rf"^readonly {name}='([^']*)'$", user_data, re.MULTILINE)
    return match.group(1) if match else ""


def _instance(aws: ClientSource, instance_id: str) -> tuple[str, str]:
    ec2, iam = aws.client("ec2"), aws.client("iam")
    instance = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    profile = str(instance["IamInstanceProfile"]["Arn"]).rsplit("/", 1)[-1]
    role_arn = str(
        iam.get_instance_profile(InstanceProfileName=profile)["InstanceProfile"]["Roles"][0]["Arn"]
    )
    encoded = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")["UserData"][
        "Value"
    ]
    return role_arn, base64.b64decode(encoded).decode()


def _notifications_inbox(aws: ClientSource, prefix: str, topic_arn: str) -> str:
    """The local stand-in for the e-mail subscriptions (raw delivery off: the body is SNS's JSON)."""
    sqs, sns = aws.client("sqs"), aws.client("sns")
    url = str(sqs.create_queue(QueueName=f"{prefix}{NOTIFICATIONS_LOCAL_SUFFIX}")["QueueUrl"])
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn, ReturnSubscriptionArn=True)
    return url


def read_resources(aws: ClientSource, outputs: Mapping[str, Any]) -> Resources:
    """Everything the local stack acts on, from Terraform's outputs and moto."""
    functions = read_functions(aws, outputs["lambda_function_names"])
    batch = aws.client("batch")
    queues = batch.describe_job_queues(jobQueues=[outputs["gpu_job_queue"], outputs["cpu_job_queue"]])
    compute_environments = {
        str(queue["jobQueueName"]): str(queue["computeEnvironmentOrder"][0]["computeEnvironment"]).rsplit(
            "/", 1
        )[-1]
        for queue in queues["jobQueues"]
    }
    role_arn, user_data = _instance(aws, str(outputs["gpu_instance_id"]))
    any_arn = str(outputs["trigger_events_topic_arn"]).split(":")
    prefix = str(outputs["ml_input_bucket"]).split("-ml-input-")[0]
    return Resources(
        outputs=dict(outputs),
        account_id=any_arn[4],
        region=any_arn[3],
        functions=functions,
        routes=read_routes(aws, functions),
        compute_environments=compute_environments,
        instance_role_arn=role_arn,
        instance_app_environment=container_environment(user_data),
        stop_after_first_boot=user_data_constant(user_data, "STOP_AFTER_FIRST_BOOT") == "true",
        instance_log_stream=(
            user_data_constant(user_data, "LOG_GROUP"),
            f"{outputs['gpu_instance_id']}/{user_data_constant(user_data, 'CONTAINER_NAME')}",
        ),
        notifications_local_queue_url=_notifications_inbox(
            aws, prefix, str(outputs["notifications_topic_arn"])
        ),
    )


def role_credentials(aws: ClientSource, role_arn: str, session_name: str) -> dict[str, str]:
    """Temporary credentials of `role_arn` (sts:AssumeRole in moto), as a process environment."""
    credentials = aws.client("sts").assume_role(RoleArn=role_arn, RoleSessionName=session_name[:64])[
        "Credentials"
    ]
    return {
        "AWS_ACCESS_KEY_ID": str(credentials["AccessKeyId"]),
        "AWS_SECRET_ACCESS_KEY": str(credentials["SecretAccessKey"]),
        "AWS_SESSION_TOKEN": str(credentials["SessionToken"]),
    }
