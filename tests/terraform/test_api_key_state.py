"""The API key never lands in Terraform state: modules/api_key applied for real against moto.

The real AWS provider (filesystem mirror, TF_PROVIDER_MIRROR) creates the parameter on a moto
server; the key is then set out of band as an operator would (scripts/set-api-key.sh does the same
put-parameter), and a refresh and a plan follow. Neither the key nor the placeholder may appear in
the state, and Terraform must not want to write the parameter again. Skipped, saying why, without a
terraform binary or a provider mirror.
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
PARAMETER = "/face-embed/statetest/api-key"
REAL_KEY = "0123456789abcdef-the-real-key-that-must-never-be-in-state"
ROOT_MODULE = """
terraform {
  required_providers {
    aws = {
      source = "hashicorp/aws"
    }
  }
}

provider "aws" {
  region                      = "us-east-1"
  access_key                  = "testing"
  secret_key                  = "testing"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_requesting_account_id  = true

  endpoints {
    ssm = "ENDPOINT"
    sts = "ENDPOINT"
  }
}

module "api_key" {
  source = "./api_key"
  name   = "PARAMETER"
}
"""


def terraform(binary: str, workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **TEST_ENV, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
    environment.pop("AWS_ENDPOINT_URL", None)  # the provider's endpoints block decides
    command = [binary, *args, "-no-color"]
    return subprocess.run(command, cwd=workdir, capture_output=True, text=True, env=environment, timeout=300)


@pytest.mark.slow
def test_the_real_api_key_is_never_in_state(aws_endpoint: str, tmp_path: Path) -> None:
    binary = shutil.which("terraform")
    if binary is None:
        pytest.skip("no terraform binary on PATH (Terraform >= 1.11 is needed for write-only arguments)")
    if not (MIRROR / "registry.terraform.io" / "hashicorp" / "aws").is_dir():
        pytest.skip(f"no AWS provider mirror at {MIRROR} (set TF_PROVIDER_MIRROR)")
    shutil.copytree(tf.MODULES_DIR / "api_key", tmp_path / "api_key")
    root = ROOT_MODULE.replace("ENDPOINT", aws_endpoint).replace("PARAMETER", PARAMETER)
    (tmp_path / "main.tf").write_text(root)

    init = terraform(binary, tmp_path, "init", f"-plugin-dir={MIRROR}", "-input=false")
    assert init.returncode == 0, init.stdout + init.stderr
    apply = terraform(binary, tmp_path, "apply", "-auto-approve", "-input=false")
    assert apply.returncode == 0, apply.stdout + apply.stderr

    ssm = boto3.client("ssm", endpoint_url=aws_endpoint, region_name="us-east-1")
    placeholder = ssm.get_parameter(Name=PARAMETER, WithDecryption=True)["Parameter"]["Value"]
    assert placeholder.startswith("PLACEHOLDER"), "it must start as a placeholder the app refuses"
    ssm.put_parameter(Name=PARAMETER, Value=REAL_KEY, Type="SecureString", Overwrite=True)

    refresh = terraform(binary, tmp_path, "apply", "-refresh-only", "-auto-approve", "-input=false")
    assert refresh.returncode == 0, refresh.stdout + refresh.stderr
    plan = terraform(binary, tmp_path, "plan", "-detailed-exitcode", "-input=false")
    assert plan.returncode == 0, "Terraform wants to write the parameter again:\n" + plan.stdout + plan.stderr

    state = (tmp_path / "terraform.tfstate").read_text()
    managed = [item["type"] for item in json.loads(state)["resources"] if item["mode"] == "managed"]
    assert managed == ["aws_ssm_parameter"]
    assert REAL_KEY not in state, "the real API key is in the Terraform state"
    assert placeholder not in state, "the placeholder value is in the Terraform state"
    assert ssm.get_parameter(Name=PARAMETER, WithDecryption=True)["Parameter"]["Value"] == REAL_KEY
