"""The local stack's parts on their own: moto as the stack runs it (its fixes of moto's gaps and IAM
enforcement), the Terraform working copy and provider source, what is read back from what Terraform
created, the AWS guards, and the Lambda host's API. (The stack as a whole: test_local_stack.py.)"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from aws_lambda_powertools.utilities.data_classes import SNSEvent
from botocore.exceptions import ClientError

from local_stack import terraform as local_terraform
from local_stack.events import batch_state_change
from local_stack.host import FunctionSpec, LambdaHost, runtime_variables
from local_stack.local_aws import (
    FAKE_CREDENTIALS,
    REPO,
    LocalAws,
    NotLocalError,
    aws_environment,
    child_environment,
)
from local_stack.moto_server import LAMBDA_URL_VARIABLE
from local_stack.processes import Console
from local_stack.resources import Route, container_environment, role_credentials
from tests.support.moto_server import free_port, wait_http

LOCAL = "http://127.0.0.1:5999"


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


def test_the_host_finds_a_function_by_name_arn_or_latest_qualifier() -> None:
    spec = FunctionSpec(
        key="controller",
        name="face-embed-dev-controller",
        arn="arn:aws:lambda:us-east-1:123456789012:function:face-embed-dev-controller",
        handler="lambdas.controller.handler.lambda_handler",
        role_arn="arn:aws:iam::123456789012:role/face-embed-dev-controller",
        timeout=900,
        memory=256,
        async_retries=1,
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


@pytest.fixture
def test_host() -> Iterator[str]:
    """A Lambda host on a free port with two test functions (tests/e2e/handlers.py) in real containers."""
    lambda_url = f"http://127.0.0.1:{free_port()}"
    specs = {}
    for key, handler in (
        ("echo", "tests.e2e.handlers.echo"),
        ("sns", "tests.e2e.handlers.first_sns_message"),
    ):
        name = f"test-{key}"
        specs[key] = FunctionSpec(
            key=key,
            name=name,
            arn=f"arn:aws:lambda:us-east-1:123456789012:function:{name}",
            handler=handler,
            role_arn="arn:aws:iam::123456789012:role/test",
            timeout=30,
            memory=128,
            async_retries=0,
            environment={},
            runtime_environment=child_environment(
                aws_environment(LOCAL, lambda_url), runtime_variables(name, 128, "us-east-1")
            ),
            dead_letter_queue_url=f"{LOCAL}/123456789012/dlq",
        )
    host = LambdaHost(specs, LocalAws(LOCAL), Console())
    host.serve(int(lambda_url.rsplit(":", 1)[1]))
    try:
        yield lambda_url
    finally:
        host.stop()


def _invoke(url: str, function: str, body: bytes, invocation_type: str = "RequestResponse") -> httpx.Response:
    return httpx.post(
        f"{url}/2015-03-31/functions/{function}/invocations",
        content=body,
        headers={"X-Amz-Invocation-Type": invocation_type},
        timeout=60,
    )


def test_a_payload_nested_too_deep_is_the_functions_unmarshal_error_not_a_dropped_connection(
    test_host: str,
) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000  # valid JSON, deeper than Python's parser goes

    answer = _invoke(test_host, "test-echo", deep)

    assert answer.status_code == 200
    assert answer.headers["X-Amz-Function-Error"] == "Unhandled"
    assert answer.json()["errorType"] == "Runtime.UnmarshalError"
    assert _invoke(test_host, "test-echo", deep, "Event").status_code == 202
    # The container survives it and serves the next invocation.
    assert _invoke(test_host, "test-echo", b'{"ok": true}').json() == {"ok": True}


def test_records_without_sns_are_a_function_error_and_bad_json_a_400(test_host: str) -> None:
    answer = _invoke(test_host, "test-sns", json.dumps({"Records": [{"EventSource": "aws:sns"}]}).encode())

    assert answer.status_code == 200
    assert answer.headers["X-Amz-Function-Error"] == "Unhandled"
    assert answer.json()["errorType"] == "KeyError" and answer.json()["stackTrace"]
    invalid = _invoke(test_host, "test-echo", b"{not json")
    assert invalid.status_code == 400
    assert invalid.headers["x-amzn-ErrorType"] == "InvalidRequestContentException"


# --- moto as the stack runs it (local_stack/moto_server.py) ----------------------------------------
class _Receiver(ThreadingHTTPServer):
    """Stands in for the Lambda host: records every Invoke request it gets."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], Any]] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((self.path, dict(self.headers), json.loads(body)))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture(scope="module")
def local_moto() -> Iterator[tuple[str, _Receiver]]:
    """`python -m local_stack.moto_server` with IAM enforcement on, SNS delivering to a receiver."""
    receiver = _Receiver()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {"PYTHONPATH": str(REPO), "INITIAL_NO_AUTH_ACTION_COUNT": "0", LAMBDA_URL_VARIABLE: receiver.url}
    process = subprocess.Popen(
        [sys.executable, "-m", "local_stack.moto_server", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/moto-api/")
        yield f"http://127.0.0.1:{port}", receiver
    finally:
        process.terminate()
        process.wait(10)
        receiver.shutdown()


def _session(**credentials: str) -> boto3.session.Session:
    keys = credentials or {
        "aws_access_key_id": FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    }
    return boto3.session.Session(
        region_name="us-east-1",
        aws_access_key_id=keys["aws_access_key_id"],
        aws_secret_access_key=keys["aws_secret_access_key"],
        aws_session_token=keys.get("aws_session_token"),
    )


def test_monitor_instances_answers_as_ec2_does(local_moto: tuple[str, _Receiver]) -> None:
    # moto raises NotImplementedError (HTTP 500) here; the AWS SDK retries 500s for minutes, which is
    # what kept aws_instance (monitoring = true) "Still creating".
    ec2 = _session().client("ec2", endpoint_url=local_moto[0])
    instance = ec2.run_instances(ImageId="ami-04681a1dbd79675a5", MinCount=1, MaxCount=1)["Instances"][0]

    answer = ec2.monitor_instances(InstanceIds=[instance["InstanceId"]])

    assert answer["InstanceMonitorings"][0]["Monitoring"]["State"] == "enabled"
    described = ec2.describe_instances(InstanceIds=[instance["InstanceId"]])["Reservations"][0]["Instances"][
        0
    ]
    assert described["Monitoring"]["State"] == "enabled"
    assert ec2.unmonitor_instances(InstanceIds=[instance["InstanceId"]])["InstanceMonitorings"]


def test_a_role_can_do_what_its_policy_allows_and_nothing_else(local_moto: tuple[str, _Receiver]) -> None:
    operator = _session()
    iam, s3 = (
        operator.client("iam", endpoint_url=local_moto[0]),
        operator.client("s3", endpoint_url=local_moto[0]),
    )
    sns = operator.client("sns", endpoint_url=local_moto[0])
    s3.create_bucket(Bucket="role-test-bucket")
    s3.put_object(Bucket="role-test-bucket", Key="uploads/a.jpg", Body=b"a")
    topic = sns.create_topic(Name="role-test-topic")["TopicArn"]
    trust = {
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ]
    }
    role = iam.create_role(RoleName="role-test", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject"],
                "Resource": "arn:aws:s3:::role-test-bucket/uploads/*",
            },
            {"Effect": "Allow", "Action": "sns:Publish", "Resource": topic},
            {"Effect": "Allow", "Action": "batch:SubmitJob", "Resource": "arn:aws:batch:*:*:job-queue/q"},
        ],
    }
    iam.put_role_policy(RoleName="role-test", PolicyName="app", PolicyDocument=json.dumps(policy))
    credentials = role_credentials(_ClientsOf(operator, local_moto[0]), role, "role-test-session")
    as_role = _session(
        aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=credentials["AWS_SESSION_TOKEN"],
    )
    role_s3 = as_role.client("s3", endpoint_url=local_moto[0])

    assert role_s3.get_object(Bucket="role-test-bucket", Key="uploads/a.jpg")["Body"].read() == b"a"
    as_role.client("sns", endpoint_url=local_moto[0]).publish(TopicArn=topic, Message="allowed")
    with pytest.raises(ClientError, match="AccessDenied"):
        role_s3.delete_object(Bucket="role-test-bucket", Key="uploads/a.jpg")  # not in the policy
    with pytest.raises(ClientError, match="AccessDenied"):
        role_s3.get_object(Bucket="role-test-bucket", Key="elsewhere.jpg")  # not under uploads/
    with pytest.raises(ClientError):
        as_role.client("ssm", endpoint_url=local_moto[0]).get_parameter(Name="/any")  # no ssm action
    # moto names Batch's REST actions in lower case ("batch:submitjob"); IAM matches actions in any case.
    with pytest.raises(ClientError) as submitted:
        as_role.client("batch", endpoint_url=local_moto[0]).submit_job(
            jobName="j", jobQueue="q", jobDefinition="d"
        )
    assert "AccessDenied" not in str(submitted.value)  # past IAM: the queue does not exist
    assert s3.get_object(Bucket="role-test-bucket", Key="uploads/a.jpg")  # the operator is not checked


def test_functions_keep_their_dead_letter_config(local_moto: tuple[str, _Receiver]) -> None:
    operator = _session()
    iam = operator.client("iam", endpoint_url=local_moto[0])
    lambda_ = operator.client("lambda", endpoint_url=local_moto[0])
    trust = {
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ]
    }
    role = iam.create_role(RoleName="dlq-test", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    dlq = "arn:aws:sqs:us-east-1:123456789012:dlq-test"

    lambda_.create_function(
        FunctionName="dlq-test",
        Role=role,
        Runtime="python3.12",
        Handler="h.h",
        Code={"ZipFile": _zip({"h.py": "def h(e, c):\n    return e\n"})},
        DeadLetterConfig={"TargetArn": dlq},
    )

    assert lambda_.get_function_configuration(FunctionName="dlq-test")["DeadLetterConfig"] == {
        "TargetArn": dlq
    }


def test_sns_delivers_to_a_lambda_subscription_as_an_asynchronous_invocation(
    local_moto: tuple[str, _Receiver],
) -> None:
    sns = _session().client("sns", endpoint_url=local_moto[0])
    topic = sns.create_topic(Name="delivery-test")["TopicArn"]
    function_arn = "arn:aws:lambda:us-east-1:123456789012:function:delivery-test"
    subscription = sns.subscribe(TopicArn=topic, Protocol="lambda", Endpoint=function_arn)["SubscriptionArn"]

    message_id = sns.publish(
        TopicArn=topic,
        Message='{"trigger_type": "batch_job"}',
        MessageAttributes={"origin": {"DataType": "String", "StringValue": "test"}},
    )["MessageId"]

    receiver = local_moto[1]
    deadline = time.monotonic() + 10
    while not receiver.requests and time.monotonic() < deadline:
        time.sleep(0.1)
    ((path, headers, event),) = receiver.requests
    assert path == f"/2015-03-31/functions/{urllib.parse.quote(function_arn, safe='')}/invocations"
    assert headers["X-Amz-Invocation-Type"] == "Event"
    parsed = SNSEvent(event).record  # what the dispatcher reads the event with
    assert parsed.event_subscription_arn == subscription and parsed.sns.topic_arn == topic
    assert parsed.sns.message_id == message_id and parsed.sns.message == '{"trigger_type": "batch_job"}'
    assert parsed.sns.message_attributes["origin"].value == "test"
    assert event["Records"][0]["Sns"]["Subject"] is None


# --- Terraform's working copy and what is read back ------------------------------------------------------
def test_without_a_provider_mirror_or_registry_the_start_says_how_to_get_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(local_terraform, "DEFAULT_PROVIDER_MIRROR", tmp_path / "missing")
    monkeypatch.setattr(local_terraform, "REGISTRY_HOST", "registry.invalid")

    with pytest.raises(local_terraform.ProviderUnavailableError, match="terraform providers mirror"):
        local_terraform.provider_source({})
    with pytest.raises(local_terraform.ProviderUnavailableError, match="is not a folder"):
        local_terraform.provider_source({local_terraform.PROVIDER_MIRROR_VARIABLE: str(tmp_path / "nope")})
    assert local_terraform.provider_source({local_terraform.PROVIDER_MIRROR_VARIABLE: str(tmp_path)}) == (
        [f"-plugin-dir={tmp_path}"],
        {},
    )


def test_the_working_copy_is_terraform_plus_local_files_and_never_a_users_tfvars(tmp_path: Path) -> None:
    source = tmp_path / "terraform"
    shutil.copytree(
        local_terraform.TERRAFORM_DIR, source, ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*")
    )
    (source / "terraform.tfvars").write_text('container_image = "real"\n')
    copy = local_terraform.LocalTerraform(tmp_path / "copy", "http://127.0.0.1:5000", lambda _: None, source)

    copy.prepare({"gpu_ami_id": "ami-04681a1dbd79675a5", "enable_s3_event_notifications": True})

    files = {path.relative_to(copy.workdir).as_posix() for path in copy.workdir.rglob("*") if path.is_file()}
    assert "terraform.tfvars" not in files and "main.tf" in files
    override = (copy.workdir / "local_override.tf").read_text()
    assert 'backend "local"' in override and '"http://127.0.0.1:5000"' in override
    assert all(f"{service} = " in override for service in local_terraform.ENDPOINT_SERVICES)
    assert (copy.workdir / "local.auto.tfvars").read_text() == (
        'gpu_ami_id = "ami-04681a1dbd79675a5"\nenable_s3_event_notifications = true\n'
    )
    assert "service_role" in (copy.workdir / "modules" / "batch" / "local_override.tf").read_text()
    with pytest.raises(NotLocalError):
        local_terraform.LocalTerraform(tmp_path / "x", "https://ec2.amazonaws.com", lambda _: None)


def test_the_apps_variables_are_the_docker_run_options_of_the_user_data() -> None:
    user_data = (
        "readonly STOP_AFTER_FIRST_BOOT='true'\n"
        "docker run -d --name app --gpus all \\\n"
        "  -p 8000:8000 \\\n"
        "  -e 'API_KEY_SSM_PARAMETER=/face-embed/dev/api-key' \\\n"
        "  -e 'INDEX_NAME=it'\\''s' \\\n"
        '  "$CONTAINER_IMAGE"\n'
    )

    assert container_environment(user_data) == {
        "API_KEY_SSM_PARAMETER": "/face-embed/dev/api-key",
        "INDEX_NAME": "it's",
    }


def test_a_batch_state_change_goes_to_the_targets_of_matching_rules() -> None:
    queue = "arn:aws:batch:us-east-1:123456789012:job-queue/q"
    pattern = {
        "source": ["aws.batch"],
        "detail-type": ["Batch Job State Change"],
        "detail": {"jobQueue": [queue]},
    }
    routes = (
        Route("arn:rule/state", "monitor", None, pattern),
        Route("arn:rule/idle", "idle_stopper", "rate(5 minutes)", None),
    )
    event = batch_state_change({"jobArn": "arn:job/1", "jobQueue": queue}, "123456789012", "us-east-1")
    other = batch_state_change({"jobArn": "arn:job/2", "jobQueue": "arn:other"}, "123456789012", "us-east-1")

    assert [route.function_key for route in routes if route.matches(event)] == ["monitor"]
    assert not any(route.matches(other) for route in routes)


class _ClientsOf:
    """A boto3 session's clients on one endpoint (what LocalAws hands the stack)."""

    def __init__(self, session: boto3.session.Session, endpoint: str) -> None:
        self._session, self._endpoint = session, endpoint

    def client(self, service: str) -> Any:
        return self._session.client(service, endpoint_url=self._endpoint)  # type: ignore[call-overload]


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def test_bucket_policies_deny_insecure_transport_but_not_the_stacks_requests(
    local_moto: tuple[str, _Receiver],
) -> None:
    s3 = _session().client("s3", endpoint_url=local_moto[0])
    s3.create_bucket(Bucket="policy-test-bucket")

    def deny(condition: dict[str, Any]) -> dict[str, Any]:
        return {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": "arn:aws:s3:::policy-test-bucket/*",
            "Condition": condition,
        }

    # The stack's statements (modules/s3): moto took their conditions as always met and denied all.
    stack_policy = [
        deny({"Bool": {"aws:SecureTransport": "false"}}),
        deny({"NumericLessThan": {"s3:TlsVersion": "1.2"}}),
    ]
    s3.put_bucket_policy(Bucket="policy-test-bucket", Policy=json.dumps({"Statement": stack_policy}))
    s3.put_object(Bucket="policy-test-bucket", Key="a", Body=b"a")
    # A condition the request does meet still denies: conditions are evaluated, not ignored.
    stricter = [deny({"NumericLessThan": {"s3:TlsVersion": "1.4"}})]
    s3.put_bucket_policy(Bucket="policy-test-bucket", Policy=json.dumps({"Statement": stricter}))
    with pytest.raises(ClientError, match="403"):
        s3.put_object(Bucket="policy-test-bucket", Key="b", Body=b"b")
