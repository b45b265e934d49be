"""scripts/create-state-backend.sh and scripts/set-api-key.sh through the real AWS CLI against a
moto server, and deploy.sh refusing to init the S3 backend without its settings."""

from __future__ import annotations

import json
import re
from typing import Any, Literal

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.scripts.test_scripts import DeployEnv, calls, deploy_env, run, script_env  # noqa: F401 (fixture)


def aws(endpoint: str, service: Literal["s3", "dynamodb"]) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name="eu-west-1")


def test_create_state_backend_creates_a_private_versioned_encrypted_bucket_and_a_lock_table(
    aws_endpoint: str,
) -> None:
    result = run("create-state-backend.sh", "acme", "eu-west-1", "--endpoint-url", aws_endpoint)
    assert result.returncode == 0, result.stderr

    s3 = aws(aws_endpoint, "s3")
    assert s3.get_bucket_location(Bucket="acme-terraform-state")["LocationConstraint"] == "eu-west-1"
    assert s3.get_bucket_versioning(Bucket="acme-terraform-state")["Status"] == "Enabled"
    bucket = "acme-terraform-state"
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    block = s3.get_public_access_block(Bucket="acme-terraform-state")["PublicAccessBlockConfiguration"]
    assert all(block.values()) and len(block) == 4
    statement = json.loads(s3.get_bucket_policy(Bucket="acme-terraform-state")["Policy"])["Statement"][0]
    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}

    dynamodb = aws(aws_endpoint, "dynamodb")
    table = dynamodb.describe_table(TableName="acme-terraform-lock")["Table"]
    assert table["KeySchema"] == [{"AttributeName": "LockID", "KeyType": "HASH"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    backups = dynamodb.describe_continuous_backups(TableName="acme-terraform-lock")
    backups = backups["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"

    assert (
        "terraform -chdir=terraform init -backend-config=bucket=acme-terraform-state "
        "-backend-config=region=eu-west-1 -backend-config=dynamodb_table=acme-terraform-lock"
    ) in result.stdout

    # The TLS-only policy is in force: moto evaluates it, and this endpoint is plain HTTP.
    with pytest.raises(ClientError, match=r"Forbidden|AccessDenied"):
        s3.put_object(Bucket=bucket, Key="face-embed/terraform.tfstate", Body=b"{}")

    # Again: nothing is recreated, the settings are applied once more.
    again = run("create-state-backend.sh", "acme", "eu-west-1", "--endpoint-url", aws_endpoint)
    assert again.returncode == 0, again.stderr
    assert "bucket s3://acme-terraform-state exists" in again.stdout
    assert "lock table acme-terraform-lock exists" in again.stdout
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"


def test_create_state_backend_without_a_table_uses_the_s3_lockfile(aws_endpoint: str) -> None:
    result = run("create-state-backend.sh", "acme", "eu-west-1", "--no-table", "--endpoint-url", aws_endpoint)
    assert result.returncode == 0, result.stderr
    assert "-backend-config=use_lockfile=true" in result.stdout
    assert aws(aws_endpoint, "dynamodb").list_tables()["TableNames"] == []


@pytest.mark.parametrize(
    "args",
    [["acme"], ["Acme!", "eu-west-1"], ["acme", "europe"], ["acme", "eu-west-1", "--bogus"]],
)
def test_create_state_backend_refuses_bad_arguments(args: list[str]) -> None:
    result = run("create-state-backend.sh", *args, env=script_env(AWS_ENDPOINT_URL="http://127.0.0.1:9"))
    assert result.returncode != 0 and "create-state-backend.sh:" in result.stderr


@pytest.fixture
def api_key_parameter(aws_endpoint: str) -> tuple[str, str]:
    kms = boto3.client("kms", endpoint_url=aws_endpoint, region_name="us-east-1")
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    ssm = boto3.client("ssm", endpoint_url=aws_endpoint, region_name="us-east-1")
    ssm.put_parameter(
        Name="/face-embed/dev/api-key",
        Type="SecureString",
        KeyId=key_id,
        Value="PLACEHOLDER-replace-with-aws-ssm-put-parameter",
    )
    return "/face-embed/dev/api-key", key_id


def stored(endpoint: str, name: str) -> tuple[str, str]:
    ssm = boto3.client("ssm", endpoint_url=endpoint, region_name="us-east-1")
    value = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    described = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [name]}])
    key_id = described["Parameters"][0]["KeyId"]
    return value, key_id


def test_set_api_key_writes_a_random_key_and_keeps_the_kms_key(
    aws_endpoint: str, api_key_parameter: tuple[str, str]
) -> None:
    name, key_id = api_key_parameter
    result = run("set-api-key.sh", name, "--endpoint-url", aws_endpoint)
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    assert stored(aws_endpoint, name) == (key, key_id)

    rotated = run("set-api-key.sh", name, "--endpoint-url", aws_endpoint).stdout.strip()
    assert rotated != key and stored(aws_endpoint, name) == (rotated, key_id)


def test_set_api_key_from_stdin_prints_nothing(aws_endpoint: str, api_key_parameter: tuple[str, str]) -> None:
    name, key_id = api_key_parameter
    own_key = "my-own-key-0123456789\n"
    result = run("set-api-key.sh", name, "--stdin", "--endpoint-url", aws_endpoint, stdin=own_key)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert stored(aws_endpoint, name) == ("my-own-key-0123456789", key_id)


@pytest.mark.parametrize(
    ("stdin", "message"),
    [("short\n", "shorter than 16"), ("PLACEHOLDER-replace-with-aws-ssm-put-parameter\n", "placeholder")],
)
def test_set_api_key_refuses_weak_keys(
    aws_endpoint: str, api_key_parameter: tuple[str, str], stdin: str, message: str
) -> None:
    name, _ = api_key_parameter
    result = run("set-api-key.sh", name, "--stdin", "--endpoint-url", aws_endpoint, stdin=stdin)
    assert result.returncode != 0 and message in result.stderr
    assert stored(aws_endpoint, name)[0].startswith("PLACEHOLDER")


def test_set_api_key_needs_an_existing_parameter(aws_endpoint: str) -> None:
    result = run("set-api-key.sh", "/nope/api-key", "--endpoint-url", aws_endpoint)
    assert result.returncode != 0 and "does not exist" in result.stderr


def test_deploy_refuses_the_s3_backend_without_settings(deploy_env: DeployEnv) -> None:  # noqa: F811
    env, tf_dir, log = deploy_env
    (tf_dir / "versions.tf").write_text('terraform {\n  backend "s3" {\n    key = "x"\n  }\n}\n')
    result = run("deploy.sh", "--chdir", str(tf_dir), "--skip-package", env=env, stdin="no\n")
    assert result.returncode != 0 and "create-state-backend.sh" in result.stderr
    assert calls(log) == []

    env["TF_STATE_BUCKET"], env["TF_STATE_REGION"], env["TF_STATE_USE_LOCKFILE"] = "b", "eu-west-1", "true"
    run("deploy.sh", "--chdir", str(tf_dir), "--skip-package", env=env, stdin="no\n")
    assert calls(log)[0] == (
        f"terraform -chdir={tf_dir} init -input=false -backend-config=bucket=b "
        "-backend-config=region=eu-west-1 -backend-config=use_lockfile=true"
    )


def test_deploy_accepts_a_backend_override(deploy_env: DeployEnv) -> None:  # noqa: F811
    env, tf_dir, log = deploy_env
    (tf_dir / "versions.tf").write_text('terraform {\n  backend "s3" {}\n}\n')
    (tf_dir / "backend_override.tf").write_text('terraform {\n  backend "local" {}\n}\n')
    run("deploy.sh", "--chdir", str(tf_dir), "--skip-package", env=env, stdin="no\n")
    assert calls(log)[0] == f"terraform -chdir={tf_dir} init -input=false"
