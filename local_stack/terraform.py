"""`terraform/` applied for real against moto: the local working copy, its provider, apply, destroy.

The working copy (`<state-dir>/terraform`) is terraform/ as it is in the checkout (refreshed at every
start; the init'd `.terraform` folder and lock file are kept, so init runs once) plus three files that
exist only there:
- `local_override.tf`: the provider's endpoints (moto for every service the stack uses), the fake
  credentials, no account-id lookup, path-style S3; the user-data template's absolute path (the root
  module finds it through `path.root/..`, which the copy does not have); and `backend "local" {}`, so
  a backend configured for AWS (S3 state) never applies locally;
- `modules/batch/local_override.tf` + `local_service_role.tf`: moto's CreateComputeEnvironment
  demands a `serviceRole`, which AWS no longer requires (without one AWS uses the service-linked role
  AWSServiceRoleForBatch, created on first use); locally that role is created by Terraform and named;
- `local.auto.tfvars`: only what must differ locally (the container image moto never pulls, an AMI
  moto has, the Lambda build folder, S3 event notifications on).
A `terraform.tfvars` or `*.auto.tfvars` of the checkout is never copied: local values come from here.

Provider: a filesystem mirror (`TF_PROVIDER_MIRROR`, default /opt/tf-plugins when present), else the
registry with a plugin cache (`TF_PLUGIN_CACHE_DIR`, default ~/.terraform.d/plugin-cache) when it can
be reached; with neither, `ProviderUnavailableError` says how to get one, within seconds.

moto starts empty at every start, so each start applies into a fresh account with a fresh state
(`-refresh=false`: there is nothing to refresh), reusing the init'd working copy.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from local_stack.local_aws import FAKE_CREDENTIALS, REGION, REPO, require_loopback

TERRAFORM_DIR: Final = REPO / "terraform"
USER_DATA_TEMPLATE: Final = REPO / "scripts" / "ec2-user-data.sh.tftpl"
PROVIDER_MIRROR_VARIABLE: Final = "TF_PROVIDER_MIRROR"
DEFAULT_PROVIDER_MIRROR: Final = Path("/opt/tf-plugins")
REGISTRY_HOST: Final = "registry.terraform.io"
# Provider endpoint keys (terraform-provider-aws `endpoints` block) of every service the stack uses.
ENDPOINT_SERVICES: Final = (
    "batch",
    "cloudwatch",
    "cloudwatchlogs",
    "dynamodb",
    "ec2",
    "eventbridge",
    "iam",
    "kms",
    "lambda",
    "s3",
    "sns",
    "sqs",
    "ssm",
    "sts",
)
# Creating ~130 resources is mostly waiting on the provider's own propagation checks: run them at once.
APPLY_PARALLELISM: Final = 64
LOCAL_CONTAINER_IMAGE: Final = "123456789012.dkr.ecr.us-east-1.amazonaws.com/face-embed:local"
# Files of the checkout's terraform/ that must not reach the local copy.
_NOT_COPIED: Final = (".terraform", ".terraform.lock.hcl", "*.tfstate", "*.tfstate.*", "*.tfvars", "*.tfplan")
_LOCAL_FILES: Final = ("local_override.tf", "local.auto.tfvars")

LineSink = Callable[[str], None]


class TerraformError(RuntimeError):
    """terraform failed; the message holds the end of its output."""


class ProviderUnavailableError(TerraformError):
    """Neither a provider mirror nor the registry is available."""


def _hcl(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid HCL string


def provider_override(moto_url: str) -> str:
    endpoints = "\n".join(f"    {service} = {_hcl(moto_url)}" for service in ENDPOINT_SERVICES)
    return f"""# Written by local_stack/terraform.py for the local stack only: moto, never AWS.
terraform {{
  backend "local" {{}}
}}

provider "aws" {{
  region                      = {_hcl(REGION)}
  access_key                  = {_hcl(FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"])}
  secret_key                  = {_hcl(FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])}
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  s3_use_path_style           = true

  endpoints {{
{endpoints}
  }}
}}

locals {{
  user_data_template_path = {_hcl(str(USER_DATA_TEMPLATE))}
}}
"""


BATCH_SERVICE_ROLE_OVERRIDE: Final = """# Local only: moto's CreateComputeEnvironment requires serviceRole
# (AWS uses its service-linked role when there is none).
resource "aws_batch_compute_environment" "this" {
  service_role = aws_iam_service_linked_role.batch.arn
}
"""
BATCH_SERVICE_ROLE: Final = """# Local only: the service-linked role AWS creates for Batch on first use.
resource "aws_iam_service_linked_role" "batch" {
  aws_service_name = "batch.amazonaws.com"
}
"""


def local_tfvars(variables: Mapping[str, Any]) -> str:
    return "".join(f"{name} = {json.dumps(value)}\n" for name, value in variables.items())


def provider_source(environ: Mapping[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
    """`terraform init` arguments and environment for the provider, or ProviderUnavailableError."""
    env = os.environ if environ is None else environ
    mirror = env.get(PROVIDER_MIRROR_VARIABLE)
    if mirror:
        if not Path(mirror).is_dir():
            raise ProviderUnavailableError(f"{PROVIDER_MIRROR_VARIABLE}={mirror} is not a folder")
        return [f"-plugin-dir={mirror}"], {}
    if DEFAULT_PROVIDER_MIRROR.is_dir():
        return [f"-plugin-dir={DEFAULT_PROVIDER_MIRROR}"], {}
    try:
        with socket.create_connection((REGISTRY_HOST, 443), timeout=3):
            pass
    except OSError:
        raise ProviderUnavailableError(
            "no provider for terraform: no filesystem mirror (set TF_PROVIDER_MIRROR to a folder made "
            "with `terraform providers mirror <folder>` in terraform/ on a machine with internet access) "
            f"and {REGISTRY_HOST} cannot be reached"
        ) from None
    cache = env.get("TF_PLUGIN_CACHE_DIR") or str(Path("~/.terraform.d/plugin-cache").expanduser())
    Path(cache).mkdir(parents=True, exist_ok=True)
    return [], {"TF_PLUGIN_CACHE_DIR": cache}


class LocalTerraform:
    """The working copy of terraform/ in `workdir`, applied against the moto at `moto_url`."""

    def __init__(self, workdir: Path, moto_url: str, log: LineSink, source: Path = TERRAFORM_DIR) -> None:
        self.workdir = workdir.resolve()
        self.moto_url = require_loopback(moto_url)
        self._log = log
        self._source = source
        self._init_args: list[str] = []
        self._init_env: dict[str, str] = {}

    # --- the working copy ------------------------------------------------------------------------
    def prepare(self, variables: Mapping[str, Any]) -> None:
        """Refresh the copy from terraform/ (keeping .terraform and the lock file); write the local files."""
        terraform = shutil.which("terraform")
        if terraform is None:
            raise TerraformError(
                "terraform is not on PATH (https://developer.hashicorp.com/terraform/install)"
            )
        self._init_args, self._init_env = provider_source()
        self.workdir.mkdir(parents=True, exist_ok=True)
        for entry in self.workdir.iterdir():
            if entry.name not in (".terraform", ".terraform.lock.hcl"):
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        shutil.copytree(
            self._source, self.workdir, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*_NOT_COPIED)
        )
        (self.workdir / "local_override.tf").write_text(provider_override(self.moto_url))
        (self.workdir / "modules" / "batch" / "local_override.tf").write_text(BATCH_SERVICE_ROLE_OVERRIDE)
        (self.workdir / "modules" / "batch" / "local_service_role.tf").write_text(BATCH_SERVICE_ROLE)
        (self.workdir / "local.auto.tfvars").write_text(local_tfvars(variables))

    def _environment(self) -> dict[str, str]:
        """terraform's own environment: nothing of the shell's AWS or TF_VAR settings reaches it."""
        keep = ("PATH", "HOME", "USER", "LANG", "TMPDIR", "TF_CLI_CONFIG_FILE")
        env = {name: value for name, value in os.environ.items() if name in keep or name.startswith("LC_")}
        return (
            env
            | {
                "TF_IN_AUTOMATION": "1",
                "TF_INPUT": "0",
                "CHECKPOINT_DISABLE": "1",
                "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            }
            | self._init_env
        )

    def run(self, *args: str, capture: bool = False) -> str:
        """`terraform <args>` in the working copy; its output goes to the log line by line."""
        process = subprocess.Popen(
            ["terraform", *args, "-no-color"],
            cwd=self.workdir,
            env=self._environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if not capture else subprocess.PIPE,
            text=True,
        )
        lines: list[str] = []
        assert process.stdout is not None
        if capture:
            output, errors = process.communicate()
            if process.returncode != 0:
                raise TerraformError(f"terraform {args[0]} failed:\n{errors.strip()[-4000:]}")
            return output
        for line in process.stdout:
            line = line.rstrip("\n")
            lines.append(line)
            if line.strip():
                self._log(line)
        if process.wait() != 0:
            tail = "\n".join(lines[-40:])
            raise TerraformError(f"terraform {args[0]} failed (exit code {process.returncode}):\n{tail}")
        return "\n".join(lines)

    def init(self) -> None:
        """Cheap after the first start: the kept .terraform folder and lock file are reused (modules
        are re-read, the provider stays linked from the mirror or the plugin cache)."""
        self.run("init", "-input=false", *self._init_args)

    def apply(self) -> dict[str, Any]:
        """Everything of terraform/ into a fresh moto (moto starts empty: the old state is dropped)."""
        for name in ("terraform.tfstate", "terraform.tfstate.backup"):
            (self.workdir / name).unlink(missing_ok=True)
        self.run(
            "apply", "-auto-approve", "-input=false", "-refresh=false", f"-parallelism={APPLY_PARALLELISM}"
        )
        return self.outputs()

    def outputs(self) -> dict[str, Any]:
        raw = json.loads(self.run("output", "-json", capture=True))
        return {name: item["value"] for name, item in raw.items()}

    def state_list(self) -> list[str]:
        return [line for line in self.run("state", "list", capture=True).splitlines() if line.strip()]

    def destroy(self, *targets: str) -> None:
        """Everything (or only `targets`, resource addresses) out of moto and the state."""
        self.run(
            "destroy",
            "-auto-approve",
            "-input=false",
            "-refresh=false",
            f"-parallelism={APPLY_PARALLELISM}",
            *(f"-target={target}" for target in targets),
        )
