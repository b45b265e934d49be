"""A fixture for the Lambda functions' unit tests (tests/lambdas): the resources they call, created
directly in moto under the Terraform stack's names, in a second (`make run` applies terraform/
itself; this is only the tests' fast stand-in). Safe to run again.

Names come from `terraform/naming.json`, the file tests/terraform checks the HCL against, so a test
resource and its AWS twin share their name. Every step creates what is missing and keeps what is
there (running the bootstrap twice changes nothing). The environments handed to the functions, the
job definitions and the app mirror the Terraform modules that set them in AWS:
`modules/lambda` (`function_environment`), `modules/batch` (`job_definition_environment`) and
`modules/ec2_gpu` (`instance_app_environment`).

Two queues exist only locally; their names derive from `name_prefix`:
- `<prefix>-trigger-local`, subscribed to the trigger topic, stands in for the topic's Lambda
  subscription (the Lambda host reads it and invokes the dispatcher);
- `<prefix>-notifications-local`, subscribed to the notifications topic, stands in for the
  e-mail subscriptions: read it with `aws sqs receive-message`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from botocore.exceptions import ClientError

from lambdas.common import env
from local_stack.local_aws import ACCOUNT_ID, REGION, REPO, ClientSource

NAMING_FILE: Final = REPO / "terraform" / "naming.json"
# Terraform's defaults (terraform/README.md Inputs: the root's, or the module's a null lets serve)
# where the local stack needs one.
GPU_INSTANCE_TYPE: Final = "g4dn.xlarge"
VPC_CIDR: Final = "10.42.0.0/16"
# modules/vpc: cidrsubnet(vpc_cidr, 8, 0), the first public subnet.
INSTANCE_SUBNET_CIDR: Final = "10.42.0.0/24"
S3_UPLOAD_PATH: Final = "upload_with_embed"
MODELS_S3_PREFIX: Final = "insightface"
JOB_TIMEOUT_SECONDS: Final = 14400
# moto accepts any AMI id; looking one up (DescribeImages) costs seconds.
AMI_ID: Final = "ami-0123456789abcdef0"
ALIVE_INSTANCE_STATES: Final = ("pending", "running", "stopping", "stopped")
FUNCTIONS: Final = ("dispatcher", "controller", "monitor", "idle_stopper")
# Job definition key (naming.json "<key>_job_definition") -> compute type and command.
JOB_DEFINITIONS: Final = {
    "script_runner_gpu": ("gpu", ["python", "-m", "gpu_app.batch", "run-script"]),
    "script_runner_cpu": ("cpu", ["python", "-m", "gpu_app.batch", "run-script"]),
    "face_embedding_gpu": ("gpu", ["python", "-m", "gpu_app.batch", "embed"]),
    "face_embedding_cpu": ("cpu", ["python", "-m", "gpu_app.batch", "embed"]),
}
_ASSUME_ROLE: Final = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {
                    "Service": ["batch.amazonaws.com", "ecs-tasks.amazonaws.com", "lambda.amazonaws.com"]
                },
                "Action": "sts:AssumeRole",
            }
        ],
    }
)


def resource_names(
    project_name: str | None = None,
    environment: str | None = None,
    account_id: str = ACCOUNT_ID,
    naming_file: Path = NAMING_FILE,
) -> dict[str, str]:
    """naming.json's patterns filled in (defaults: its project_name and environment)."""
    spec = json.loads(naming_file.read_text())
    values = {
        "project_name": project_name or spec["project_name"],
        "environment": environment or spec["environment"],
        "account_id": account_id,
    }
    values["name_prefix"] = spec["patterns"]["name_prefix"].format(**values)
    names = {key: pattern.format(**values) for key, pattern in spec["patterns"].items()}
    names["trigger_local_queue"] = f"{values['name_prefix']}-trigger-local"
    names["notifications_local_queue"] = f"{values['name_prefix']}-notifications-local"
    names["idle_check_rule"] = f"{values['name_prefix']}-idle-check"
    return names


@dataclasses.dataclass(frozen=True)
class Resources:
    """What the bootstrap created or found: names as Terraform passes them, plus ARNs and URLs."""

    names: Mapping[str, str]
    account_id: str
    region: str
    input_bucket: str
    output_bucket: str
    models_bucket: str
    trigger_topic_arn: str
    notifications_topic_arn: str
    trigger_dlq_url: str
    monitor_dlq_url: str
    trigger_local_queue_url: str
    trigger_subscription_arn: str
    notifications_local_queue_url: str
    idempotency_table: str
    api_key_parameter: str
    job_queue_arns: Mapping[str, str]  # gpu / cpu
    job_definition_arns: Mapping[str, str]  # JOB_DEFINITIONS key
    compute_environments: Mapping[str, str]  # gpu / cpu -> name
    batch_log_group: str
    instance_id: str

    @property
    def function_names(self) -> dict[str, str]:
        return {function: self.names[f"{function}_function"] for function in FUNCTIONS}

    def function_arn(self, function: str) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.function_names[function]}"

    def function_environment(self, function: str, **overrides: str) -> dict[str, str]:
        """Exactly the variables env.py declares for `function`, valued as modules/lambda sets them."""
        names = self.names
        values = {
            "POWERTOOLS_SERVICE_NAME": function,
            "ML_INPUT_BUCKET": self.input_bucket,
            "ML_OUTPUT_BUCKET": self.output_bucket,
            "GPU_JOB_QUEUE": names["gpu_job_queue"],
            "CPU_JOB_QUEUE": names["cpu_job_queue"],
            "SCRIPT_JOB_DEFINITION_GPU": names["script_runner_gpu_job_definition"],
            "SCRIPT_JOB_DEFINITION_CPU": names["script_runner_cpu_job_definition"],
            "EMBED_JOB_DEFINITION_GPU": names["face_embedding_gpu_job_definition"],
            "EMBED_JOB_DEFINITION_CPU": names["face_embedding_cpu_job_definition"],
            "CONTROLLER_FUNCTION_NAME": names["controller_function"],
            "IDEMPOTENCY_TABLE": self.idempotency_table,
            "DEAD_LETTER_QUEUE_URL": self.trigger_dlq_url,
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


def _without_empty(variables: Mapping[str, str]) -> dict[str, str]:
    """Terraform leaves out empty values (Batch would drop them anyway); so does the local stack."""
    return {name: value for name, value in variables.items() if value != ""}


def _common_app_environment(names: Mapping[str, str], settings: Mapping[str, str]) -> dict[str, str]:
    """Settings the app image reads, as both modules/batch and modules/ec2_gpu set them."""
    return {
        "MODEL_PACK": "buffalo_l",
        "DET_SIZE": "640",
        "MODELS_S3_URI": f"s3://{names['models_bucket']}/{MODELS_S3_PREFIX}",
        "STORAGE_BACKEND": "s3",
        "S3_BUCKET_NAME": names["input_bucket"],
        "S3_UPLOAD_PATH": S3_UPLOAD_PATH,
        "AWS_REGION": REGION,
        "VECTOR_INDEX": "embedded",
        "INDEX_NAME": "face_embeddings",
        "API_KEY_SSM_PARAMETER": names["api_key_parameter"],
    } | dict(settings)


def job_definition_environment(
    names: Mapping[str, str], compute: str, settings: Mapping[str, str]
) -> dict[str, str]:
    """modules/batch `job_environment[compute]`; `settings` replaces what only exists in AWS
    (MODEL_ROOT=/models, the GPU) with local values, and an empty value removes a variable."""
    provider = {"EXECUTION_PROVIDER": "auto", "REQUIRE_GPU": "true"} if compute == "gpu" else {}
    base = {
        "ML_INPUT_BUCKET": names["input_bucket"],
        "ML_OUTPUT_BUCKET": names["output_bucket"],
        "MODEL_ROOT": "/models",
        "EXECUTION_PROVIDER": "cpu",
        "REQUIRE_GPU": "false",
    } | provider
    return _without_empty(base | _common_app_environment(names, settings))


def instance_app_environment(names: Mapping[str, str], settings: Mapping[str, str]) -> dict[str, str]:
    """modules/ec2_gpu `app_environment` (the container's variables), with local `settings`."""
    base = {
        "MODEL_ROOT": "/models",
        "EXECUTION_PROVIDER": "auto",
        "REQUIRE_GPU": "true",
        "AUTO_SHUTDOWN_IDLE_TIME": "3600",
        "HOST": "0.0.0.0",
        "PORT": "8000",
    }
    return _without_empty(base | _common_app_environment(names, settings))


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _role(iam: Any, name: str) -> str:
    try:
        return str(iam.get_role(RoleName=name)["Role"]["Arn"])
    except ClientError as exc:
        if _code(exc) != "NoSuchEntity":
            raise
    return str(iam.create_role(RoleName=name, AssumeRolePolicyDocument=_ASSUME_ROLE)["Role"]["Arn"])


def _bucket(s3: Any, name: str) -> str:
    try:
        s3.create_bucket(Bucket=name)
    except ClientError as exc:
        if _code(exc) != "BucketAlreadyOwnedByYou":
            raise
    return name


def _queue(sqs: Any, name: str) -> tuple[str, str]:
    # CreateQueue is idempotent for the same attributes; 14 days is what the DLQ module keeps.
    url = str(sqs.create_queue(QueueName=name, Attributes={"MessageRetentionPeriod": "1209600"})["QueueUrl"])
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, str(arn)


def _subscription(sns: Any, topic_arn: str, queue_arn: str) -> str:
    """An SQS subscription without raw delivery: the body is the SNS notification JSON."""
    pages = sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn)
    for page in pages:
        for item in page["Subscriptions"]:
            if item["Protocol"] == "sqs" and item["Endpoint"] == queue_arn:
                return str(item["SubscriptionArn"])
    return str(
        sns.subscribe(
            TopicArn=topic_arn,
            Protocol="sqs",
            Endpoint=queue_arn,
            Attributes={"RawMessageDelivery": "false"},
            ReturnSubscriptionArn=True,
        )["SubscriptionArn"]
    )


def _table(dynamodb: Any, name: str) -> str:
    try:
        dynamodb.describe_table(TableName=name)
        return name
    except ClientError as exc:
        if _code(exc) != "ResourceNotFoundException":
            raise
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"}
    )
    return name


def _parameter(ssm: Any, name: str, value: str) -> str:
    try:
        if ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"] == value:
            return name
    except ClientError as exc:
        if _code(exc) != "ParameterNotFound":
            raise
    ssm.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)
    return name


def _log_group(logs: Any, name: str) -> str:
    existing = logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    if not any(group["logGroupName"] == name for group in existing):
        logs.create_log_group(logGroupName=name)
    return name


def _tagged(ec2: Any, kind: str, name: str, key: str, create: dict[str, Any]) -> str:
    """A VPC or subnet found by its Name tag, else created with it."""
    found = getattr(ec2, f"describe_{kind}s")(Filters=[{"Name": "tag:Name", "Values": [name]}])[
        f"{kind.title()}s"
    ]
    if found:
        return str(found[0][key])
    tags = [{"ResourceType": kind, "Tags": [{"Key": "Name", "Value": name}]}]
    return str(getattr(ec2, f"create_{kind}")(TagSpecifications=tags, **create)[kind.title()][key])


def _instance_subnet(ec2: Any, prefix: str, vpc_cidr: str, subnet_cidr: str) -> str:
    vpc = _tagged(ec2, "vpc", prefix, "VpcId", {"CidrBlock": vpc_cidr})
    return _tagged(ec2, "subnet", f"{prefix}-public-0", "SubnetId", {"VpcId": vpc, "CidrBlock": subnet_cidr})


def _instance(ec2: Any, name: str, instance_type: str, subnet_id: str, stop_after_first_boot: bool) -> str:
    """The start-on-demand instance, found by its Name tag; a new one is stopped after its first boot,
    as Terraform's gpu_stop_after_first_boot does."""
    reservations = ec2.describe_instances(
        Filters=[
            {"Name": "tag:Name", "Values": [name]},
            {"Name": "instance-state-name", "Values": list(ALIVE_INSTANCE_STATES)},
        ]
    )["Reservations"]
    found = [instance["InstanceId"] for reservation in reservations for instance in reservation["Instances"]]
    if found:
        return str(found[0])
    instance_id = str(
        ec2.run_instances(
            ImageId=AMI_ID,
            InstanceType=instance_type,
            MinCount=1,
            MaxCount=1,
            SubnetId=subnet_id,
            TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}]}],
        )["Instances"][0]["InstanceId"]
    )
    if stop_after_first_boot:
        ec2.stop_instances(InstanceIds=[instance_id])
    return instance_id


def _compute_environment(batch: Any, name: str, role_arn: str) -> str:
    found = batch.describe_compute_environments(computeEnvironments=[name])["computeEnvironments"]
    if found:
        return str(found[0]["computeEnvironmentArn"])
    # UNMANAGED: moto would otherwise model instances; the local executor is the compute.
    return str(
        batch.create_compute_environment(
            computeEnvironmentName=name, type="UNMANAGED", state="ENABLED", serviceRole=role_arn
        )["computeEnvironmentArn"]
    )


def _job_queue(batch: Any, name: str, compute_environment_arn: str) -> str:
    found = batch.describe_job_queues(jobQueues=[name])["jobQueues"]
    if found:
        return str(found[0]["jobQueueArn"])
    return str(
        batch.create_job_queue(
            jobQueueName=name,
            state="ENABLED",
            priority=1,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": compute_environment_arn}],
        )["jobQueueArn"]
    )


def _job_definition(batch: Any, name: str, container: dict[str, Any]) -> str:
    """The latest ACTIVE revision when it matches; otherwise a new revision, as Terraform makes."""
    found = batch.describe_job_definitions(jobDefinitionName=name, status="ACTIVE")["jobDefinitions"]
    latest = max(found, key=lambda definition: definition["revision"], default=None)
    wanted = {key: container[key] for key in ("command", "environment", "resourceRequirements")}
    if latest is not None and all(latest["containerProperties"].get(k) == v for k, v in wanted.items()):
        return str(latest["jobDefinitionArn"])
    return str(
        batch.register_job_definition(
            jobDefinitionName=name,
            type="container",
            platformCapabilities=["EC2"],
            containerProperties=container,
            timeout={"attemptDurationSeconds": JOB_TIMEOUT_SECONDS},
        )["jobDefinitionArn"]
    )


def _resource_requirements(compute: str) -> list[dict[str, str]]:
    """The job definitions' defaults: the dispatcher's DEFAULT_* (Terraform feeds both from one variable)."""
    prefix = "DEFAULT_GPU_" if compute == "gpu" else "DEFAULT_CPU_"
    requirements = [
        {"type": "VCPU", "value": str(env.DISPATCHER[f"{prefix}VCPUS"])},
        {"type": "MEMORY", "value": str(env.DISPATCHER[f"{prefix}MEMORY"])},
    ]
    if compute == "gpu":
        requirements.append({"type": "GPU", "value": str(env.DISPATCHER["DEFAULT_GPU_GPUS"])})
    return requirements


def _batch(
    session: ClientSource,
    names: Mapping[str, str],
    job_environment: Mapping[str, Mapping[str, str]] | None,
) -> dict[str, Any]:
    batch = session.client("batch")
    role_arn = _role(session.client("iam"), f"{names['name_prefix']}-batch-job")
    compute_environments = {kind: f"{names['name_prefix']}-{kind}" for kind in ("gpu", "cpu")}
    queues = {
        kind: _job_queue(
            batch,
            names[f"{kind}_job_queue"],
            _compute_environment(batch, compute_environments[kind], role_arn),
        )
        for kind in ("gpu", "cpu")
    }
    definitions = {}
    for key, (compute, command) in JOB_DEFINITIONS.items():
        variables = (job_environment or {}).get(compute, {})
        container = {
            "image": f"{names['name_prefix']}-app:local",
            "command": command,
            "jobRoleArn": role_arn,
            "resourceRequirements": _resource_requirements(compute),
            "environment": [{"name": name, "value": variables[name]} for name in sorted(variables)],
        }
        definitions[key] = _job_definition(batch, names[f"{key}_job_definition"], container)
    return {
        "job_queue_arns": queues,
        "job_definition_arns": definitions,
        "compute_environments": compute_environments,
    }


def create_resources(
    session: ClientSource,
    *,
    api_key: str,
    account_id: str = ACCOUNT_ID,
    names: Mapping[str, str] | None = None,
    job_environment: Mapping[str, Mapping[str, str]] | None = None,
    instance_type: str = GPU_INSTANCE_TYPE,
    vpc_cidr: str = VPC_CIDR,
    instance_subnet_cidr: str = INSTANCE_SUBNET_CIDR,
    stop_after_first_boot: bool = True,
) -> Resources:
    """Create (or find) every resource of the stack in the account `session` reaches.

    `job_environment` ("gpu"/"cpu" -> variables) goes into the job definitions, as Terraform's
    batch module puts it there; None leaves them without variables.
    """
    names = dict(names or resource_names(account_id=account_id))
    s3, sqs, sns = session.client("s3"), session.client("sqs"), session.client("sns")
    buckets = {kind: _bucket(s3, names[f"{kind}_bucket"]) for kind in ("input", "output", "models")}
    trigger_topic = str(sns.create_topic(Name=names["trigger_topic"])["TopicArn"])
    notifications_topic = str(sns.create_topic(Name=names["notifications_topic"])["TopicArn"])
    trigger_dlq_url, _ = _queue(sqs, names["trigger_dlq"])
    monitor_dlq_url, _ = _queue(sqs, names["monitor_dlq"])
    trigger_local_url, trigger_local_arn = _queue(sqs, names["trigger_local_queue"])
    notifications_local_url, notifications_local_arn = _queue(sqs, names["notifications_local_queue"])
    trigger_subscription = _subscription(sns, trigger_topic, trigger_local_arn)
    _subscription(sns, notifications_topic, notifications_local_arn)
    ec2 = session.client("ec2")
    subnet = _instance_subnet(ec2, names["name_prefix"], vpc_cidr, instance_subnet_cidr)
    return Resources(
        names=names,
        account_id=account_id,
        region=REGION,
        input_bucket=buckets["input"],
        output_bucket=buckets["output"],
        models_bucket=buckets["models"],
        trigger_topic_arn=trigger_topic,
        notifications_topic_arn=notifications_topic,
        trigger_dlq_url=trigger_dlq_url,
        monitor_dlq_url=monitor_dlq_url,
        trigger_local_queue_url=trigger_local_url,
        trigger_subscription_arn=trigger_subscription,
        notifications_local_queue_url=notifications_local_url,
        idempotency_table=_table(session.client("dynamodb"), names["idempotency_table"]),
        api_key_parameter=_parameter(session.client("ssm"), names["api_key_parameter"], api_key),
        batch_log_group=_log_group(session.client("logs"), names["batch_log_group"]),
        instance_id=_instance(ec2, names["gpu_instance"], instance_type, subnet, stop_after_first_boot),
        **_batch(session, names, job_environment),
    )
