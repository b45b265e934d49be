"""Structure of the Terraform configuration, read statically with python-hcl2.

Every check lives in tfconfig.py and returns its problems; the tests at the bottom run each check on
a deliberately broken snippet to prove it can fail.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest

from lambdas.common.env import FUNCTION_ENVIRONMENT
from tests.terraform import tfconfig as tf

MODULE_DIRS = tf.all_module_dirs()
MODULE_IDS = [str(path.relative_to(tf.TERRAFORM_DIR)) for path in MODULE_DIRS]

ROOT_OUTPUTS = {
    "ml_input_bucket",
    "ml_output_bucket",
    "trigger_events_topic_arn",
    "notifications_topic_arn",
    "trigger_dlq_url",
    "monitor_dlq_url",
    "gpu_instance_id",
    "app_url",
    "gpu_job_queue",
    "cpu_job_queue",
    "lambda_function_names",
}
EXPECTED_MODULES = {"vpc", "sns", "s3", "batch", "ec2_gpu", "lambda"}


@pytest.fixture(scope="module")
def modules() -> dict[str, tf.Module]:
    return {name: tf.load_module(path) for name, path in zip(MODULE_IDS, MODULE_DIRS, strict=True)}


@pytest.fixture(scope="module")
def root(modules: dict[str, tf.Module]) -> tf.Module:
    return modules["."]


def test_the_issue_modules_exist() -> None:
    present = {path.name for path in tf.MODULES_DIR.iterdir() if path.is_dir()}
    assert present >= EXPECTED_MODULES, f"missing modules: {sorted(EXPECTED_MODULES - present)}"


@pytest.mark.parametrize(
    "check",
    [
        tf.check_versions,
        tf.check_variables_typed_and_described,
        tf.check_outputs_described,
        tf.check_var_references,
        tf.check_references,
        tf.check_module_calls,
        tf.check_readme_documents,
        tf.check_s3_buckets,
        tf.check_instances,
        tf.check_iam_policies,
        tf.check_ingress,
    ],
    ids=lambda check: check.__name__.removeprefix("check_"),
)
@pytest.mark.parametrize("module_id", MODULE_IDS)
def test_module(
    module_id: str, check: Callable[[tf.Module], list[str]], modules: dict[str, tf.Module]
) -> None:
    problems = check(modules[module_id])
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", MODULE_DIRS, ids=MODULE_IDS)
def test_module_files(path: Path) -> None:
    problems = tf.check_required_files(path)
    assert not problems, "\n".join(problems)


def test_root_holds_no_resources(root: tf.Module) -> None:
    assert not root.resources, f"the root module declares resources: {sorted(root.resources)}"
    assert not root.data, f"the root module declares data sources: {sorted(root.data)}"


def test_every_module_is_used(root: tf.Module) -> None:
    sources = {str(body["source"]).removeprefix("./modules/") for body in root.modules.values()}
    unused = {path.name for path in tf.MODULES_DIR.iterdir() if path.is_dir()} - sources
    assert not unused, f"modules nothing calls: {sorted(unused)}"


def test_root_outputs(root: tf.Module) -> None:
    missing = ROOT_OUTPUTS - set(root.outputs)
    assert not missing, f"root outputs missing: {sorted(missing)}"


def test_tfvars_example(root: tf.Module) -> None:
    text = tf.TFVARS_EXAMPLE.read_text()
    problems = tf.check_tfvars(text, root)
    assert not problems, "\n".join(problems)
    # Every setting a user edits is in the example (set or commented out).
    undocumented = [name for name in root.variables if name not in text]
    assert not undocumented, f"terraform.tfvars.example does not mention: {undocumented}"


def test_readme_inputs(root: tf.Module) -> None:
    problems = tf.check_readme_inputs((tf.TERRAFORM_DIR / "README.md").read_text(), root)
    assert not problems, "\n".join(problems)


def test_lambda_environment_matches_env_py(modules: dict[str, tf.Module]) -> None:
    problems = tf.check_lambda_environment(modules["modules/lambda"], FUNCTION_ENVIRONMENT)
    assert not problems, "\n".join(problems)


def test_naming_json(modules: dict[str, tf.Module]) -> None:
    problems = tf.check_naming(tf.load_naming(), modules)
    assert not problems, "\n".join(problems)


def test_lambda_functions(modules: dict[str, tf.Module], root: tf.Module) -> None:
    lambda_module = modules["modules/lambda"]
    functions = lambda_module.locals["functions"]
    assert set(functions) == set(FUNCTION_ENVIRONMENT)
    for key, function in functions.items():
        assert function["handler"] == f"lambdas.{key}.handler.lambda_handler"
    body = lambda_module.resources[("aws_lambda_function", "this")]
    assert body["runtime"] == "python3.12"
    assert body["architectures"] == ["${var.architecture}"]
    assert "filebase64sha256" in body["source_code_hash"]
    assert (
        lambda_module.locals["packages"]
        == '${{for key in keys(local.functions) : key => "${var.build_dir}/${key}.zip"}}'
    )
    assert root.locals["lambda_build_dir"].endswith('"${path.root}/../build/lambda"}')
    in_vpc = {key for key, function in functions.items() if function["in_vpc"]}
    assert in_vpc == {"controller", "idle_stopper"}


def test_batch_job_definitions(modules: dict[str, tf.Module], root: tf.Module) -> None:
    batch = modules["modules/batch"]
    definitions = batch.locals["job_definitions"]
    run_script = ["python", "-m", "gpu_app.batch", "run-script"]
    embed = ["python", "-m", "gpu_app.batch", "embed"]
    assert {key: value["command"] for key, value in definitions.items()} == {
        "script_runner_gpu": run_script,
        "script_runner_cpu": run_script,
        "face_embedding_gpu": embed,
        "face_embedding_cpu": embed,
    }
    requirements = batch.locals["resource_requirements"]
    assert [item["type"] for item in requirements["gpu"]] == ["VCPU", "MEMORY", "GPU"]
    assert [item["type"] for item in requirements["cpu"]] == ["VCPU", "MEMORY"]
    assert all(
        str(item["value"]).startswith("${tostring(") for kind in requirements.values() for item in kind
    )

    body = batch.resources[("aws_batch_job_definition", "this")]
    retry = tf.first_block(body["retry_strategy"])
    rules = tf.all_blocks(retry["evaluate_on_exit"])
    assert rules[0] == {"action": "RETRY", "on_status_reason": "Host EC2*"}, (
        "spot reclaims must be retried first"
    )
    assert {"action": "EXIT", "on_exit_code": "*"} in rules, "application errors must end the job"
    assert tf.first_block(body["timeout"])["attempt_duration_seconds"]

    queue = batch.resources[("aws_batch_job_queue", "this")]
    limit = tf.first_block(tf.first_block(queue["dynamic"])["job_state_time_limit_action"])
    assert tf.first_block(limit["content"])["state"] == "RUNNABLE"
    assert tf.first_block(limit["content"])["action"] == "CANCEL"

    environment = tf.first_block(
        batch.resources[("aws_batch_compute_environment", "this")]["compute_resources"]
    )
    assert environment["min_vcpus"] == 0, "compute environments must scale to zero"

    defaults = {name: body.get("default") for name, body in root.variables.items()}
    assert defaults["ml_gpu_job_vcpus"] == 4
    assert defaults["ml_gpu_job_memory"] == 16384
    assert defaults["ml_gpu_job_gpus"] == 1
    assert defaults["ml_cpu_job_vcpus"] == 2
    assert defaults["ml_cpu_job_memory"] == 4096
    # Null at the root: the batch module's default serves.
    assert defaults["ml_gpu_use_spot_instances"] is None
    assert defaults["ml_cpu_use_spot_instances"] is None
    assert batch.variables["gpu_use_spot_instances"]["default"] is True
    assert batch.variables["cpu_use_spot_instances"]["default"] is True
    assert batch.variables["gpu_image_type"]["default"] == "ECS_AL2023_NVIDIA"


def test_gpu_instance(modules: dict[str, tf.Module], root: tf.Module) -> None:
    ec2 = modules["modules/ec2_gpu"]
    instance = ec2.resources[("aws_instance", "this")]
    assert instance["instance_initiated_shutdown_behavior"] == "stop"
    assert root.variables["gpu_instance_type"]["default"] == "g4dn.xlarge"
    assert "templatefile(var.user_data_template_path" in ec2.locals["user_data"]
    assert root.locals["user_data_template_path"] == "${path.root}/../scripts/ec2-user-data.sh.tftpl"
    assert (tf.REPO_ROOT / "scripts" / "ec2-user-data.sh.tftpl").is_file()


################################################################################
# Every check catches what it is for
################################################################################


def _module(tmp_path: Path, text: str, name: str = "broken") -> tf.Module:
    folder = tmp_path / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "main.tf").write_text(text)
    return tf.load_module(folder)


def test_catches_untyped_or_undescribed_variables(tmp_path: Path) -> None:
    module = _module(tmp_path, 'variable "a" {\n  description = "x"\n}\nvariable "b" {\n  type = string\n}\n')
    assert tf.check_variables_typed_and_described(module) == [
        "broken: variable a has no type",
        "broken: variable b has no description",
    ]


def test_catches_undescribed_outputs(tmp_path: Path) -> None:
    module = _module(tmp_path, 'output "a" {\n  value = 1\n}\n')
    assert tf.check_outputs_described(module) == ["broken: output a has no description"]


def test_catches_undeclared_variables(tmp_path: Path) -> None:
    module = _module(tmp_path, 'variable "a" {\n  type = string\n}\nlocals {\n  b = "${var.a}-${var.c}"\n}\n')
    assert tf.check_var_references(module) == ["broken: var.c is used but not declared"]


def test_catches_dangling_references(tmp_path: Path) -> None:
    text = """
resource "aws_sqs_queue" "real" {
  name = local.missing
}
data "aws_region" "current" {}
output "a" {
  description = "x"
  value = [
    aws_sqs_queue.ghost.arn, data.aws_region.gone.name, module.none.x,
    data.aws_region.current.name, aws_sqs_queue.real.arn,
  ]
}
"""
    assert tf.check_references(_module(tmp_path, text)) == [
        "broken: aws_sqs_queue.ghost is not declared",
        "broken: data.aws_region.gone is not declared",
        "broken: local.missing is not defined",
        "broken: module.none is not declared",
    ]


def test_catches_bad_module_calls(tmp_path: Path) -> None:
    child = """
variable "needed" {
  type = string
}
variable "optional" {
  type    = string
  default = "x"
}
output "out" {
  value = 1
}
"""
    _module(tmp_path, child, name="child")
    caller = """
module "child" {
  source  = "./../child"
  unknown = 1
}
module "gone" {
  source = "./../nowhere"
}
output "a" {
  description = "x"
  value       = [module.child.out, module.child.nope]
}
"""
    assert tf.check_module_calls(_module(tmp_path, caller)) == [
        "broken: module child does not pass required variable needed",
        "broken: module child passes unknown, which ./../child does not declare",
        "broken: module gone source ./../nowhere does not exist",
        "broken: module.child.nope is not an output of ./../child",
    ]


def test_catches_missing_files_and_old_versions(tmp_path: Path) -> None:
    old = """
terraform {
  required_version = ">= 1.3"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 4.0"
    }
  }
}
"""
    module = _module(tmp_path, old)
    assert tf.check_required_files(module.path) == [
        "broken: variables.tf is missing",
        "broken: outputs.tf is missing",
        "broken: versions.tf is missing",
        "broken: README.md is missing",
    ]
    assert tf.check_versions(module) == [
        "broken: required_version '>= 1.3' is not >= 1.5",
        "broken: the aws provider constraint '>= 4.0' does not require >= 5",
    ]


def test_catches_undocumented_readme(tmp_path: Path) -> None:
    module = _module(tmp_path, 'variable "a" {\n  type = string\n}\noutput "b" {\n  value = 1\n}\n')
    (module.path / "README.md").write_text("# broken\n")
    assert tf.check_readme_documents(module) == [
        "broken: README does not document input a",
        "broken: README does not document output b",
        "broken: README has no HCL usage example",
    ]


def test_catches_bad_tfvars(root: tf.Module) -> None:
    problems = tf.check_tfvars(
        'not_a_variable = 1\ns3_force_destroy = "yes"\naz_count = "two"\nazs = "us-east-1a"\n', root
    )
    assert problems == [
        "tfvars sets not_a_variable, which the root module does not declare",
        "tfvars sets s3_force_destroy = 'yes', but it is a bool",
        "tfvars sets az_count = 'two', but it is a number",
        "tfvars sets azs = 'us-east-1a', but it is a list",
    ]


def test_catches_stale_readme_inputs(tmp_path: Path) -> None:
    _module(
        tmp_path, 'variable "size" {\n  type    = number\n  default = 3\n}\n', name="broken/modules/child"
    )
    root = _module(
        tmp_path,
        'variable "size" {\n  type        = number\n  description = "Size."\n  default     = null\n}\n'
        'variable "name" {\n  type        = string\n  description = "Name."\n  default     = "a"\n}\n'
        'module "child" {\n  source = "./modules/child"\n  size   = var.size\n}\n',
    )
    assert tf.readme_default(root, "size") == "`null`: `3` (modules/child)"
    good = "| `size` | Size. | `number` | `null`: `3` (modules/child) | no |\n"
    assert tf.check_readme_inputs(good + '| `name` | Name. | `string` | `"a"` | no |\n', root) == []
    assert tf.check_readme_inputs("| `size` | Old. | `number` | `3` | no |\n", root) == [
        "README Inputs table lacks name",
        "README Inputs: the description of size differs from variables.tf",
        "README Inputs: size shows default `3`, not `null`: `3` (modules/child)",
    ]


def test_catches_unprotected_buckets(tmp_path: Path) -> None:
    text = """
resource "aws_s3_bucket" "bare" {
  bucket = "x"
}
resource "aws_s3_bucket" "half" {
  bucket = "y"
}
resource "aws_s3_bucket_public_access_block" "half" {
  bucket                  = aws_s3_bucket.half.id
  block_public_acls       = true
  block_public_policy     = false
  ignore_public_acls      = true
  restrict_public_buckets = true
}
resource "aws_s3_bucket_versioning" "half" {
  bucket = aws_s3_bucket.half.id
  versioning_configuration {
    status = "Suspended"
  }
}
resource "aws_s3_bucket_policy" "half" {
  bucket = aws_s3_bucket.half.id
  policy = data.aws_iam_policy_document.half.json
}
data "aws_iam_policy_document" "half" {
  statement {
    actions   = ["s3:GetObject"]
    resources = ["*"]
  }
}
"""
    problems = tf.check_s3_buckets(_module(tmp_path, text))
    assert len(problems) == 8, problems
    assert "broken: aws_s3_bucket.half has no versioning" in problems
    assert "broken: aws_s3_bucket.half has no TLS-only bucket policy" in problems


def test_catches_imdsv1_and_unencrypted_volumes(tmp_path: Path) -> None:
    text = """
resource "aws_instance" "a" {
  metadata_options {
    http_tokens = "optional"
  }
  root_block_device {
    encrypted = false
  }
}
resource "aws_launch_template" "b" {
  block_device_mappings {
    ebs {
      encrypted = false
    }
  }
}
"""
    assert tf.check_instances(_module(tmp_path, text)) == [
        "broken: aws_instance.a does not require IMDSv2",
        "broken: aws_instance.a has an unencrypted root volume",
        "broken: aws_launch_template.b does not require IMDSv2",
        "broken: aws_launch_template.b has an unencrypted volume",
    ]


def test_catches_wildcard_policies(tmp_path: Path) -> None:
    text = """
data "aws_iam_policy_document" "p" {
  statement {
    actions   = ["s3:*"]
    resources = ["arn:aws:s3:::x"]
  }
  statement {
    actions   = ["sqs:SendMessage", "ec2:DescribeInstances"]
    resources = ["*"]
  }
  statement {
    effect    = "Deny"
    actions   = ["*"]
    resources = ["*"]
  }
  dynamic "statement" {
    for_each = [1]
    content {
      actions   = ["*"]
      resources = ["arn:aws:sns:us-east-1:123456789012:t"]
    }
  }
}
resource "aws_iam_role_policy" "inline" {
  role   = "r"
  policy = jsonencode({ Statement = [] })
}
"""
    assert tf.check_iam_policies(_module(tmp_path, text)) == [
        "broken: data.aws_iam_policy_document.p allows the wildcard action s3:*",
        "broken: data.aws_iam_policy_document.p grants ['sqs:SendMessage'] on '*'",
        "broken: data.aws_iam_policy_document.p allows the wildcard action *",
        "broken: aws_iam_role_policy.inline is not built from an aws_iam_policy_document",
    ]


def test_catches_open_ingress(tmp_path: Path) -> None:
    text = """
resource "aws_vpc_security_group_ingress_rule" "world" {
  security_group_id = "sg-1"
  ip_protocol       = "tcp"
  cidr_ipv4         = "0.0.0.0/0"
}
resource "aws_vpc_security_group_ingress_rule" "fixed" {
  security_group_id = "sg-1"
  ip_protocol       = "tcp"
  cidr_ipv4         = "203.0.113.0/24"
}
resource "aws_security_group" "inline" {
  ingress {
    cidr_blocks = ["0.0.0.0/0"]
  }
}
"""
    assert tf.check_ingress(_module(tmp_path, text)) == [
        "broken: aws_vpc_security_group_ingress_rule.world admits the whole internet",
        "broken: aws_vpc_security_group_ingress_rule.fixed admits 203.0.113.0/24,"
        " not from a variable list or the VPC",
        "broken: aws_security_group.inline has an inline ingress from the internet",
    ]


def test_catches_lambda_environment_drift(modules: dict[str, tf.Module]) -> None:
    contract = copy.deepcopy(FUNCTION_ENVIRONMENT)
    contract["monitor"]["NEW_SETTING"] = None
    del contract["controller"]["APP_PORT"]
    assert tf.check_lambda_environment(modules["modules/lambda"], contract) == [
        "controller: the lambda module sets APP_PORT, which env.py does not list",
        "monitor: env.py lists NEW_SETTING but the lambda module does not set it",
    ]


def test_catches_naming_drift(modules: dict[str, tf.Module]) -> None:
    naming = copy.deepcopy(tf.load_naming())
    naming["environment"] = "prod"
    naming["patterns"]["gpu_job_queue"] = "{name_prefix}-gpu"
    del naming["patterns"]["monitor_dlq"]
    assert tf.check_naming(naming, modules) == [
        "naming.json environment is 'prod', the variable default is 'dev'",
        "gpu_job_queue: HCL builds '{name_prefix}-gpu-queue', naming.json says '{name_prefix}-gpu'",
        "naming.json lacks the pattern monitor_dlq",
    ]
