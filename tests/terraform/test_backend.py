"""The partial `backend "s3"` of terraform/versions.tf with the GPU ML pipeline design's init command.

`terraform init -backend-config=bucket=... -backend-config=dynamodb_table=... -backend-config=region=...`
(plus, here only, a backend file pointing the S3 backend at a moto server) and an apply of a root
module that has terraform/versions.tf as it is: the state must land in the bucket under the block's
key, encrypted, and the lock must go through the DynamoDB table. Also with `use_lockfile=true`
instead of the table. Skipped, saying why, without a terraform binary or a provider mirror.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import boto3
import pytest

from tests.support.moto_server import TEST_ENV
from tests.terraform import tfconfig as tf

MIRROR = Path(os.environ.get("TF_PROVIDER_MIRROR", "/opt/tf-plugins"))
STATE_KEY = "face-embed/terraform.tfstate"
BUCKET = "ml-pipeline-terraform-state"  # the design's ${PROJECT_NAME}-terraform-state


def terraform_root(tmp_path: Path, endpoint: str) -> tuple[str, Path]:
    binary = shutil.which("terraform")
    if binary is None:
        pytest.skip("no terraform binary on PATH (Terraform >= 1.11)")
    if not (MIRROR / "registry.terraform.io" / "hashicorp" / "aws").is_dir():
        pytest.skip(f"no AWS provider mirror at {MIRROR} (set TF_PROVIDER_MIRROR)")
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(tf.TERRAFORM_DIR / "versions.tf", root / "versions.tf")
    (root / "main.tf").write_text('resource "terraform_data" "marker" {\n  input = "state in S3"\n}\n')
    # Only what a moto server needs beyond the design's three settings.
    (root / "moto.s3.tfbackend").write_text(
        f'endpoints = {{\n  s3 = "{endpoint}"\n  dynamodb = "{endpoint}"\n  sts = "{endpoint}"\n}}\n'
        'access_key = "testing"\nsecret_key = "testing"\nuse_path_style = true\n'
        "skip_credentials_validation = true\nskip_requesting_account_id = true\n"
        "skip_metadata_api_check = true\n"
    )
    return binary, root


def terraform(binary: str, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **TEST_ENV, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
    environment.pop("AWS_ENDPOINT_URL", None)
    command = [binary, *args, "-no-color", "-input=false"]
    return subprocess.run(command, cwd=root, capture_output=True, text=True, env=environment, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("lock", ["dynamodb_table", "use_lockfile"])
def test_the_design_init_command_keeps_the_state_in_s3(aws_endpoint: str, tmp_path: Path, lock: str) -> None:
    binary, root = terraform_root(tmp_path, aws_endpoint)
    s3 = boto3.client("s3", endpoint_url=aws_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    dynamodb = boto3.client("dynamodb", endpoint_url=aws_endpoint, region_name="us-east-1")
    dynamodb.create_table(
        TableName="ml-pipeline-terraform-lock",
        AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    lock_setting = (
        "-backend-config=dynamodb_table=ml-pipeline-terraform-lock"
        if lock == "dynamodb_table"
        else "-backend-config=use_lockfile=true"
    )

    init = terraform(
        binary,
        root,
        "init",
        f"-plugin-dir={MIRROR}",
        f"-backend-config=bucket={BUCKET}",
        lock_setting,
        "-backend-config=region=us-east-1",
        "-backend-config=moto.s3.tfbackend",
    )
    assert init.returncode == 0, init.stdout + init.stderr
    assert 'Successfully configured the backend "s3"' in init.stdout
    apply = terraform(binary, root, "apply", "-auto-approve")
    assert apply.returncode == 0, apply.stdout + apply.stderr

    assert not (root / "terraform.tfstate").exists(), "the state must not stay on this machine"
    stored = s3.get_object(Bucket=BUCKET, Key=STATE_KEY)
    assert stored["ServerSideEncryption"] in {"AES256", "aws:kms"}, "encrypt = true must encrypt the state"
    state = json.loads(stored["Body"].read())
    assert [resource["type"] for resource in state["resources"]] == ["terraform_data"]
    items = dynamodb.scan(TableName="ml-pipeline-terraform-lock")["Items"]
    if lock == "dynamodb_table":
        # The lock itself is released after the apply; the state's digest stays in the table.
        assert [item["LockID"]["S"] for item in items] == [f"{BUCKET}/{STATE_KEY}-md5"]
    else:
        assert items == []
