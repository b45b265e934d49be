"""The local stack as users start it (`python -m local_stack`, what `make run` runs), driven with the
real AWS CLI (awscli from .venv) and HTTP, on free ports with a temporary state folder.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from local_stack.stack import READY_LINE
from local_stack.terraform import LocalTerraform, ProviderUnavailableError, provider_source
from tests.gpu_app.conftest import MODEL_PACK, MODEL_ROOT
from tests.support.moto_server import TEST_ENV, free_port

REPO = Path(__file__).resolve().parents[2]
AWS_CLI = str(Path(sys.executable).parent / "aws")
# terraform apply of the whole stack into moto (about 100 s on 2 busy cores) is part of the start.
START_TIMEOUT = 420.0
STOP_TIMEOUT = 90.0
# Short enough to watch the idle stopper act, long enough for a test to use the app between calls.
IDLE_CHECK_SECONDS = 2
AUTO_SHUTDOWN_IDLE_TIME = 10
# Videos uploaded under incoming/ larger than this take the Batch route (the stack's apply gets it as
# s3_event_video_instance_max_bytes); the tests' clips of a few seconds stay below, on the instance.
VIDEO_INSTANCE_MAX_BYTES = 100_000


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    """Poll until `condition()` is truthy; fail the test with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@dataclasses.dataclass
class StackProcess:
    """One `python -m local_stack` run: its output collected, stopped with SIGINT like Ctrl-C."""

    state_dir: Path
    moto_port: int
    lambda_port: int
    app_port: int
    process: subprocess.Popen[str] | None = None
    lines: list[str] = dataclasses.field(default_factory=list)  # this run's
    history: list[str] = dataclasses.field(default_factory=list)  # earlier runs'
    reader: threading.Thread | None = None

    @property
    def moto_url(self) -> str:
        return f"http://127.0.0.1:{self.moto_port}"

    @property
    def lambda_url(self) -> str:
        return f"http://127.0.0.1:{self.lambda_port}"

    @property
    def app_url(self) -> str:
        return f"http://127.0.0.1:{self.app_port}"

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTEST_"))}
        env |= {"MODEL_ROOT": str(MODEL_ROOT), "MODEL_PACK": MODEL_PACK, "PYTHONUNBUFFERED": "1"}
        self.history, self.lines = self.history + self.lines, []
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "local_stack",
                f"--state-dir={self.state_dir}",
                f"--moto-port={self.moto_port}",
                f"--lambda-port={self.lambda_port}",
                f"--app-port={self.app_port}",
                f"--idle-check-seconds={IDLE_CHECK_SECONDS}",
                f"--auto-shutdown-idle-time={AUTO_SHUTDOWN_IDLE_TIME}",
                f"--var=s3_event_video_instance_max_bytes={VIDEO_INSTANCE_MAX_BYTES}",
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.reader = threading.Thread(target=self._collect, args=(self.process,), daemon=True)
        self.reader.start()
        wait_for(
            lambda: READY_LINE in self.lines or self.process.poll() is not None,  # type: ignore[union-attr]
            START_TIMEOUT,
            "the stack to print that it is ready",
        )
        if READY_LINE not in self.lines:
            pytest.fail(f"the stack exited with {self.process.returncode}:\n{self.output}")

    def _collect(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.lines.append(line.rstrip("\n"))

    def run_id(self) -> str:
        return str(json.loads((self.state_dir / "run.json").read_text())["run_id"])

    def interrupt(self) -> int:
        """Ctrl-C: SIGINT, then the exit code once the stack has stopped everything."""
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(STOP_TIMEOUT)
        if self.reader is not None:
            self.reader.join(10)  # the last lines
        return code

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Cli:
    """The AWS CLI as a user runs it: fake credentials exported, every command with --endpoint-url."""

    def __init__(self, stack: StackProcess) -> None:
        self.stack = stack
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | TEST_ENV
        self.env |= {"AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}

    def run(
        self, *args: str, endpoint: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [AWS_CLI, "--endpoint-url", endpoint or self.stack.moto_url, *args],
            env=self.env,
            cwd=self.stack.state_dir.parent,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check and result.returncode != 0:
            pytest.fail(f"aws {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def json(self, *args: str, endpoint: str | None = None) -> Any:
        output = self.run(*args, endpoint=endpoint).stdout
        return json.loads(output) if output.strip() else {}

    def invoke(self, function: str, payload: dict[str, Any], *extra: str) -> tuple[dict[str, Any], Any]:
        """`aws lambda invoke`: (the CLI's answer, the payload written to the out file)."""
        out = self.stack.state_dir.parent / f"invoke-{time.monotonic_ns()}.json"
        answer = json.loads(
            self.run(
                "lambda",
                "invoke",
                "--function-name",
                function,
                "--payload",
                json.dumps(payload),
                *extra,
                str(out),
                endpoint=self.stack.lambda_url,
            ).stdout
        )
        body = out.read_text()
        out.unlink()
        return answer, json.loads(body) if body else None

    def publish(self, topic_arn: str, message: dict[str, Any] | str) -> str:
        text = message if isinstance(message, str) else json.dumps(message)
        return str(self.json("sns", "publish", "--topic-arn", topic_arn, "--message", text)["MessageId"])

    def receive(self, queue_url: str, wait: int = 1) -> list[dict[str, Any]]:
        """Every message now in the queue (attributes included), deleted as read."""
        messages: list[dict[str, Any]] = []
        while True:
            batch = self.json(
                "sqs",
                "receive-message",
                "--queue-url",
                queue_url,
                "--max-number-of-messages",
                "10",
                "--message-attribute-names",
                "All",
                "--wait-time-seconds",
                str(wait),
            ).get("Messages", [])
            if not batch:
                return messages
            messages += batch
            for message in batch:
                self.run(
                    "sqs",
                    "delete-message",
                    "--queue-url",
                    queue_url,
                    "--receipt-handle",
                    message["ReceiptHandle"],
                )


@dataclasses.dataclass
class LocalStack:
    process: StackProcess
    cli: Cli
    names: dict[str, str]
    api_key: str
    notifications: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def input_bucket(self) -> str:
        return self.names["input_bucket"]

    @property
    def output_bucket(self) -> str:
        return self.names["output_bucket"]

    @property
    def controller(self) -> str:
        return self.names["controller_function"]

    def terraform(self) -> LocalTerraform:
        """The stack's Terraform working copy, on its moto."""
        return LocalTerraform(self.process.state_dir / "terraform", self.process.moto_url, lambda _: None)

    def queue_url(self, key: str) -> str:
        return self.names[f"{key}_url"]

    def topic_arn(self, key: str) -> str:
        return self.names[f"{key}_arn"]

    def app(self) -> httpx.Client:
        return httpx.Client(base_url=self.process.app_url, headers={"X-API-Key": self.api_key}, timeout=60)

    def jobs(self) -> list[dict[str, Any]]:
        """The local Batch executor's view of the jobs (moto's own says SUCCEEDED at once)."""
        return list(httpx.get(f"{self.process.lambda_url}/local/batch/jobs", timeout=10).json())

    def drain_notifications(self, subject_start: str) -> list[dict[str, Any]]:
        """Every notification so far (read off the inbox queue) whose subject starts so, oldest first."""
        for message in self.cli.receive(self.queue_url("notifications_local_queue")):
            self.notifications.append(json.loads(message["Body"]))
        return [n for n in self.notifications if str(n.get("Subject", "")).startswith(subject_start)]

    def notification(self, subject_start: str, timeout: float = 120) -> dict[str, Any]:
        """The SNS envelope of the first notification whose subject starts so."""
        found = wait_for(
            lambda: self.drain_notifications(subject_start), timeout, f"a notification {subject_start!r}"
        )
        return dict(found[0])

    def app_ready(self) -> bool:
        try:
            return httpx.get(f"{self.process.app_url}/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def app_refuses(self) -> bool:
        try:
            httpx.get(f"{self.process.app_url}/health", timeout=2)
        except httpx.ConnectError:
            return True
        except httpx.TransportError:  # accepted, then reset as the app went down: ask again
            return False
        return False

    def start_instance(self) -> None:
        answer, result = self.cli.invoke(self.controller, {"action": "start"})
        assert "FunctionError" not in answer, result
        wait_for(self.app_ready, 90, "the app to be ready")


@pytest.fixture(scope="session")
def stack_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    # The stack applies terraform/: without Terraform or a provider it cannot start, and says so.
    if shutil.which("terraform") is None:
        pytest.skip("terraform is not on PATH: the local stack applies terraform/ (make run needs it too)")
    try:
        provider_source()
    except ProviderUnavailableError as exc:
        pytest.skip(f"no AWS provider for the local stack's terraform apply: {exc}")
    process = StackProcess(
        state_dir=tmp_path_factory.mktemp("e2e") / "state",
        moto_port=free_port(),
        lambda_port=free_port(),
        app_port=free_port(),
    )
    process.start()
    yield process
    process.kill()
    # Everything the stack printed, for reading after a failure.
    (process.state_dir.parent / "stack.log").write_text("\n".join(process.history + process.lines))


def terraform_outputs(state_dir: Path) -> dict[str, Any]:
    """`terraform output -json` of the stack's working copy: the names Terraform gave everything."""
    return LocalTerraform(state_dir / "terraform", "http://127.0.0.1:1", lambda _: None).outputs()


def names_from_outputs(outputs: dict[str, Any], moto_url: str) -> dict[str, str]:
    """The names the tests use, every one read from Terraform's outputs (plus the local inbox queue)."""
    functions = outputs["lambda_function_names"]
    prefix = str(outputs["ml_input_bucket"]).split("-ml-input-")[0]
    return {
        "input_bucket": outputs["ml_input_bucket"],
        "output_bucket": outputs["ml_output_bucket"],
        "gpu_job_queue": outputs["gpu_job_queue"],
        "cpu_job_queue": outputs["cpu_job_queue"],
        "batch_log_group": outputs["batch_log_group_name"],
        "api_key_parameter": outputs["api_key_parameter_name"],
        "trigger_topic_arn": outputs["trigger_events_topic_arn"],
        "trigger_dlq_url": outputs["trigger_dlq_url"],
        "monitor_dlq_url": outputs["monitor_dlq_url"],
        "s3_event_queue_url": outputs["s3_event_queue_url"],
        "s3_event_dlq_url": outputs["s3_event_dlq_url"],
        "notifications_local_queue_url": f"{moto_url}/123456789012/{prefix}-notifications-local",
        "gpu_instance_id": outputs["gpu_instance_id"],
        "gpu_instance_log_group": outputs["gpu_instance_log_group_name"],
        **{f"{key}_function": name for key, name in functions.items()},
    }


@pytest.fixture(scope="session")
def local_stack(stack_process: StackProcess) -> LocalStack:
    return LocalStack(
        process=stack_process,
        cli=Cli(stack_process),
        names=names_from_outputs(terraform_outputs(stack_process.state_dir), stack_process.moto_url),
        api_key=(stack_process.state_dir / "api-key").read_text().strip(),
    )
