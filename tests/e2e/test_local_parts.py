"""The local stack's parts on their own: the bootstrap against moto, the AWS guards, the SNS event,
and how the Lambda host finds a function. (The stack as a whole: test_local_stack.py.)"""

from __future__ import annotations

import json
import re

import boto3
import pytest
from aws_lambda_powertools.utilities.data_classes import SNSEvent

from lambdas.local.bootstrap import (
    NAMING_FILE,
    create_resources,
    instance_app_environment,
    job_definition_environment,
    resource_names,
)
from lambdas.local.events import sns_record
from lambdas.local.host import FunctionSpec, LambdaHost
from lambdas.local.local_aws import (
    FAKE_CREDENTIALS,
    LocalAws,
    NotLocalError,
    aws_environment,
    child_environment,
)
from lambdas.local.processes import Console
from tests.terraform.tfconfig import TERRAFORM_DIR, load_module

LOCAL = "http://127.0.0.1:5999"
# Empty in Terraform unless vector_index = "elasticsearch"; empty variables are left out there too.
ELASTICSEARCH_ONLY = {"ES_HOSTS", "ES_SECRET_NAME"}
_HCL_KEY = re.compile(r"\b([A-Z][A-Z0-9_]+)\s*=")


def test_names_are_naming_json_patterns() -> None:
    patterns = json.loads(NAMING_FILE.read_text())["patterns"]
    names = resource_names(account_id="111122223333")

    assert names["input_bucket"] == "face-embed-dev-ml-input-111122223333"
    assert names["api_key_parameter"] == "/face-embed/dev/api-key"
    assert set(patterns) <= set(names)
    assert resource_names("other", "prod")["trigger_topic"] == "other-prod-trigger-events"


def test_job_definitions_and_the_app_get_the_variables_terraform_sets() -> None:
    batch = load_module(TERRAFORM_DIR / "modules" / "batch")
    common = {key for key in batch.locals["common_environment"] if not key.startswith("__")}
    per_compute = {
        compute: set(_HCL_KEY.findall(batch.locals["job_environment"][compute])) for compute in ("gpu", "cpu")
    }
    app = set(_HCL_KEY.findall(load_module(TERRAFORM_DIR / "modules" / "ec2_gpu").locals["app_environment"]))
    names = resource_names()

    for compute in ("gpu", "cpu"):
        assert (
            set(job_definition_environment(names, compute, {}))
            == (common | per_compute[compute]) - ELASTICSEARCH_ONLY
        )
    assert set(instance_app_environment(names, {})) == app - ELASTICSEARCH_ONLY
    assert job_definition_environment(names, "gpu", {})["REQUIRE_GPU"] == "true"
    assert (
        job_definition_environment(names, "cpu", {"MODELS_S3_URI": ""}).keys().isdisjoint({"MODELS_S3_URI"})
    )


def test_bootstrap_twice_changes_nothing_and_a_changed_definition_gets_a_revision(aws_endpoint: str) -> None:
    session = boto3.session.Session()
    environment = {"gpu": {"MODEL_PACK": "offline_sc"}, "cpu": {"MODEL_PACK": "offline_sc"}}

    first = create_resources(session, api_key="key-1", job_environment=environment)
    again = create_resources(session, api_key="key-1", job_environment=environment)

    assert again == first
    names = first.names
    ec2, sns, batch = session.client("ec2"), session.client("sns"), session.client("batch")
    instance = ec2.describe_instances(InstanceIds=[first.instance_id])["Reservations"][0]["Instances"][0]
    assert instance["State"]["Name"] == "stopped"
    assert {"Key": "Name", "Value": names["gpu_instance"]} in instance["Tags"]
    assert (
        len(
            ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": [names["gpu_instance"]]}])[
                "Reservations"
            ]
        )
        == 1
    )
    subscriptions = sns.list_subscriptions_by_topic(TopicArn=first.trigger_topic_arn)["Subscriptions"]
    assert len(subscriptions) == 1
    definition = names["script_runner_cpu_job_definition"]
    assert (
        len(batch.describe_job_definitions(jobDefinitionName=definition, status="ACTIVE")["jobDefinitions"])
        == 1
    )

    changed = create_resources(
        session, api_key="key-2", job_environment={"gpu": {}, "cpu": {"MODEL_PACK": "buffalo_l"}}
    )

    assert changed.job_definition_arns["script_runner_cpu"].endswith(f"{definition}:2")
    ssm = session.client("ssm")
    assert (
        ssm.get_parameter(Name=names["api_key_parameter"], WithDecryption=True)["Parameter"]["Value"]
        == "key-2"
    )


def test_child_environments_carry_only_fake_credentials_and_loopback_endpoints() -> None:
    shell = {
        "PATH": "/usr/bin",
        "AWS_PROFILE": "production",
        "AWS_ACCESS_KEY_ID": "AKIAREALKEY",
        "AWS_ENDPOINT_URL": "https://s3.amazonaws.com",
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true",
        "API_KEY": "from-the-shell",
    }
    aws = aws_environment(LOCAL, "http://127.0.0.1:5998")

    env = child_environment(
        aws, {"AWS_ENDPOINT_URL_S3": "https://s3.amazonaws.com", "AWS_REGION": "us-east-1"}, shell
    )

    assert env["PATH"] == "/usr/bin" and env["AWS_ACCESS_KEY_ID"] == FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"]
    assert (env["AWS_ENDPOINT_URL"], env["AWS_ENDPOINT_URL_LAMBDA"]) == (LOCAL, "http://127.0.0.1:5998")
    assert not {"AWS_PROFILE", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "AWS_ENDPOINT_URL_S3", "API_KEY"} & set(
        env
    )
    with pytest.raises(NotLocalError):
        aws_environment("https://s3.amazonaws.com", LOCAL)
    with pytest.raises(NotLocalError):
        aws_environment("http://localhost:5000", LOCAL)  # only 127.0.0.1: the stack binds nothing else


def test_the_stacks_own_clients_refuse_to_send_anywhere_else() -> None:
    aws = LocalAws(LOCAL)
    stray = aws.session.client("s3", endpoint_url="https://s3.amazonaws.com")

    with pytest.raises(NotLocalError):
        stray.list_buckets()


def test_an_sns_delivery_becomes_the_event_lambda_receives(aws_endpoint: str) -> None:
    session = boto3.session.Session()
    resources = create_resources(session, api_key="key")
    session.client("sns").publish(
        TopicArn=resources.trigger_topic_arn,
        Message='{"trigger_type": "batch_job"}',
        MessageAttributes={"origin": {"DataType": "String", "StringValue": "test"}},
    )
    (delivery,) = session.client("sqs").receive_message(
        QueueUrl=resources.trigger_local_queue_url, WaitTimeSeconds=1
    )["Messages"]

    record = sns_record(json.loads(delivery["Body"]), resources.trigger_subscription_arn)

    parsed = SNSEvent({"Records": [record]}).record  # what the dispatcher reads the event with
    assert (
        parsed.event_source == "aws:sns"
        and parsed.event_subscription_arn == resources.trigger_subscription_arn
    )
    assert parsed.sns.message == '{"trigger_type": "batch_job"}'
    assert parsed.sns.topic_arn == resources.trigger_topic_arn
    assert parsed.sns.message_attributes["origin"].get_type == "String"
    assert parsed.sns.message_attributes["origin"].value == "test"
    assert record["Sns"]["Subject"] is None and record["Sns"]["SigningCertUrl"].startswith("https://")
    with pytest.raises(ValueError, match="not an SNS notification"):
        sns_record({"Type": "SubscriptionConfirmation"}, resources.trigger_subscription_arn)


def test_the_host_finds_a_function_by_name_arn_or_latest_qualifier() -> None:
    spec = FunctionSpec(
        key="controller",
        name="face-embed-dev-controller",
        arn="arn:aws:lambda:us-east-1:123456789012:function:face-embed-dev-controller",
        environment={},
        runtime_environment={},
        dead_letter_queue_url=f"{LOCAL}/123456789012/dlq",
    )
    host = LambdaHost({"controller": spec}, LocalAws(LOCAL), Console())
    try:
        for identifier in (
            "face-embed-dev-controller",
            "face-embed-dev-controller:$LATEST",
            "123456789012:function:face-embed-dev-controller",
            spec.arn,
            f"{spec.arn}:$LATEST",
        ):
            assert host.resolve(identifier) is spec, identifier
        assert host.resolve("face-embed-dev-controller", "$LATEST") is spec
        assert host.resolve("face-embed-dev-controller:7") is None
        assert host.resolve("face-embed-dev-controller", "live") is None
        assert host.resolve("face-embed-dev-monitor") is None
    finally:
        host.stop()
