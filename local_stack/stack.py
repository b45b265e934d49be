"""Start and stop the whole local stack, in order, on 127.0.0.1 only (README.md here has the picture)."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from local_stack.banner import banner
from local_stack.batch_executor import BatchExecutor
from local_stack.event_sources import sqs_pollers
from local_stack.events import batch_state_change
from local_stack.host import FunctionSpec, LambdaHost, runtime_variables
from local_stack.local_aws import (
    LOOPBACK,
    REPO,
    RUN_MARKER,
    LocalAws,
    aws_environment,
    child_environment,
    loopback_url,
)
from local_stack.moto_server import LAMBDA_URL_VARIABLE
from local_stack.packages import build_code_zips
from local_stack.processes import Console, LineSink, Loop, ManagedProcess, marked_processes
from local_stack.resources import Resources, read_resources, role_credentials
from local_stack.sources import Schedule
from local_stack.state import StateDir
from local_stack.supervisor import AppSupervisor
from local_stack.terraform import LOCAL_CONTAINER_IMAGE, LocalTerraform, TerraformError

READY_LINE: Final = "Local stack ready."
MOTO_START_TIMEOUT: Final = 60.0
# The model settings a user may set for `make run`; everything else is the stack's (as in AWS).
PASSED_APP_SETTINGS: Final = ("MODEL_ROOT", "MODEL_PACK", "DET_SIZE", "DET_THRESHOLD", "MATCH_THRESHOLD")
_MOTO_ACCESS_LOG: Final = f"{LOOPBACK} - - ["


@dataclasses.dataclass(frozen=True)
class Options:
    state_dir: Path
    moto_port: int = 5000
    lambda_port: int = 5001
    app_port: int = 8000
    app: bool = True
    idle_check_seconds: float = 60.0
    auto_shutdown_idle_time: int = 3600
    batch_parallelism: int = 2
    # Extra variables of the apply (--var), after the stack's own; for example a small
    # s3_event_video_instance_max_bytes, so a test video takes the Batch route.
    terraform_variables: Mapping[str, Any] = dataclasses.field(default_factory=dict)


class StartError(RuntimeError):
    """The stack cannot start (a port is taken, moto did not come up, ...); the message says why."""


def _check_port_free(port: int, what: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the servers bind: a port whose last connections linger in TIME_WAIT is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            hint = " (on macOS the AirPlay Receiver uses 5000)" if port == 5000 else ""
            raise StartError(f"port {port} for {what} is in use{hint}: choose another port") from None


def _moto_line(sink: LineSink) -> LineSink:
    # moto logs every request; its access log would bury everything else (the SQS polls alone).
    return lambda line: None if line.startswith(_MOTO_ACCESS_LOG) else sink(line)


class LocalStack:
    def __init__(self, options: Options, console: Console) -> None:
        self.options = options
        self.console = console
        self.log = console.sink("stack")
        self.state = StateDir(options.state_dir)
        self.moto_url = loopback_url(options.moto_port)
        self.lambda_url = loopback_url(options.lambda_port)
        self.app_url = loopback_url(options.app_port) if options.app else None
        self.aws_env = aws_environment(self.moto_url, self.lambda_url)
        self.resources: Resources | None = None
        self.terraform = LocalTerraform(
            self.state.root / "terraform", self.moto_url, console.sink("terraform")
        )
        self._moto: ManagedProcess | None = None
        self._watchdog: ManagedProcess | None = None
        self._aws: LocalAws | None = None
        self._host: LambdaHost | None = None
        self._loops: list[Loop] = []
        # Fresh per run, never inherited: the final sweep (and the watchdog) kill what carries it.
        self.run_id = uuid.uuid4().hex

    # --- start ---------------------------------------------------------------------------------
    def start(self) -> None:
        options = self.options
        for port, what in (
            (options.moto_port, "moto"),
            (options.lambda_port, "the Lambda API"),
            (options.app_port, "the app"),
        ):
            _check_port_free(port, what)
        self.state.lock()
        # This process and every child use moto only; the marker lets the stop find all of them.
        for name in [name for name in os.environ if name.startswith("AWS_")]:
            del os.environ[name]
        os.environ.update(self.aws_env | {RUN_MARKER: self.run_id})
        run = {"pid": os.getpid(), "run_id": self.run_id, "moto": self.moto_url, "lambda": self.lambda_url}
        (self.state.root / "run.json").write_text(json.dumps(run | {"app": self.app_url}))
        self._start_watchdog()
        self._start_moto()
        aws = self._aws = LocalAws(self.moto_url)
        started = time.monotonic()
        resources = self.resources = self._apply(aws)
        applied = time.monotonic() - started
        # The key is the stack's (generated once, kept in the state folder); Terraform only created
        # the parameter with a placeholder, as in AWS, where scripts/set-api-key.sh sets the value.
        aws.client("ssm").put_parameter(
            Name=resources.api_key_parameter, Value=self.state.api_key(), Type="SecureString", Overwrite=True
        )
        if resources.stop_after_first_boot:
            # The user data's first boot ends with a shutdown that stops the instance (moto runs none).
            aws.client("ec2").stop_instances(InstanceIds=[resources.instance_id])
        restored = self.state.restore_buckets(aws.client("s3"), self._saved_buckets(resources))
        self.log(
            f"terraform apply: every resource created in {applied:.1f} s; {restored} S3 object(s) restored"
        )
        host = self._host = LambdaHost(self._function_specs(aws, resources), aws, self.console)
        host.serve(options.lambda_port)
        supervisor = self._supervisor(aws, host, resources) if options.app else None
        executor = self._executor(aws, host, resources)
        host.add_view("/local/batch/jobs", executor.snapshot)
        host.add_view("/local/status", self.status)
        self._loops.append(executor)
        for route in resources.routes:
            if route.schedule is not None:
                self._loops.append(
                    Schedule(
                        host,
                        route.function_key,
                        route.rule_arn,
                        options.idle_check_seconds,
                        # While the app boots, EC2 would say "pending", which the idle stopper leaves alone.
                        (lambda: supervisor.booting) if supervisor is not None else (lambda: False),
                        self.console.sink("schedule"),
                    )
                )
        # Lambda's pollers of the SQS event source mappings (the S3 event queue's batching window).
        pollers = sqs_pollers(aws, self.moto_url, host, self.console.sink("sqs"))
        host.add_view("/local/event-sources", lambda: [poller.snapshot() for poller in pollers])
        self._loops.extend(pollers)
        for loop in self._loops:
            loop.start()
        self.console.line(
            "",
            banner(
                resources,
                moto_url=self.moto_url,
                lambda_url=self.lambda_url,
                app_url=self.app_url,
                state_dir=self.state.root,
                idle_check_seconds=options.idle_check_seconds,
                auto_shutdown_idle_time=options.auto_shutdown_idle_time,
            ),
        )
        self.console.line("", READY_LINE)

    def _apply(self, aws: LocalAws) -> Resources:
        """terraform/ applied into this (empty) moto; what it created, read back."""
        build_dir = build_code_zips(self.state.root / "build" / "lambda")
        variables = {
            "container_image": LOCAL_CONTAINER_IMAGE,
            "gpu_ami_id": _moto_ami(aws),
            "lambda_build_dir": str(build_dir),
            "enable_s3_event_notifications": True,
        } | dict(self.options.terraform_variables)
        try:
            self.terraform.prepare(variables)
            self.terraform.init()
            outputs = self.terraform.apply()
        except TerraformError as exc:  # ProviderUnavailableError too: it says how to get a provider
            raise StartError(str(exc)) from None
        return read_resources(aws, outputs)

    def _supervisor(self, aws: LocalAws, host: LambdaHost, resources: Resources) -> AppSupervisor:
        """The app with the variables Terraform gave the instance's container (its user data), the local
        replacements for what exists only on the instance, and the instance role's credentials."""
        app_environment = (
            dict(resources.instance_app_environment)
            | self._app_settings()
            | {
                "HOST": LOOPBACK,
                "PORT": str(self.options.app_port),
                "AUTO_SHUTDOWN_IDLE_TIME": str(self.options.auto_shutdown_idle_time),
                "JOB_SPOOL_DIR": str(self.state.spool_dir),
            }
        )
        credentials = role_credentials(aws, resources.instance_role_arn, resources.instance_id)
        supervisor = AppSupervisor(
            aws,
            resources.instance_id,
            self.options.app_port,
            child_environment(self.aws_env | credentials, _without_empty(app_environment)),
            self.console,
            log_stream=resources.instance_log_stream,
        )
        # The controller and the idle stopper change the instance: follow at once, not at the next poll.
        host.observe(lambda key, _: supervisor.wake() if key in ("controller", "idle_stopper") else None)
        self._loops.append(supervisor)
        return supervisor

    def _executor(self, aws: LocalAws, host: LambdaHost, resources: Resources) -> BatchExecutor:
        def emit(detail: dict[str, Any]) -> None:
            # EventBridge: the state change goes to the targets of every rule whose pattern matches.
            event = batch_state_change(detail, resources.account_id, resources.region)
            for route in resources.routes_for(event):
                host.invoke_async(route.function_key, event)

        return BatchExecutor(
            aws,
            queues={
                resources.job_queues[kind]: resources.compute_environments[resources.job_queues[kind]]
                for kind in ("gpu", "cpu")
            },
            name_prefix=resources.name_prefix,
            log_group=resources.batch_log_group,
            aws_environment=self.aws_env,
            local_settings=self._app_settings(),
            workdir=self.state.batch_dir,
            emit=emit,
            console=self.console,
            moto_url=self.moto_url,
            parallelism=self.options.batch_parallelism,
        )

    def _start_watchdog(self) -> None:
        self._watchdog = ManagedProcess(
            "watchdog",
            [sys.executable, "-m", "local_stack.watchdog", str(os.getpid()), self.run_id],
            env=child_environment(self.aws_env, {"PYTHONPATH": str(REPO)}),
            cwd=REPO,
            sink=self.console.sink("watchdog"),
        )

    def _start_moto(self) -> None:
        self._moto = ManagedProcess(
            "moto",
            [
                sys.executable,
                "-m",
                "local_stack.moto_server",
                "-H",
                LOOPBACK,
                "-p",
                str(self.options.moto_port),
            ],
            env=child_environment(
                self.aws_env,
                {
                    "PYTHONPATH": str(REPO),
                    # AWS-managed policies (AmazonEC2ContainerServiceforEC2Role, ...) exist in every
                    # account; moto loads them only when asked.
                    "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",
                    # IAM enforcement from the first request (see moto_server.py for what it covers).
                    "INITIAL_NO_AUTH_ACTION_COUNT": "0",
                    LAMBDA_URL_VARIABLE: self.lambda_url,
                },
            ),
            cwd=self.state.root,
            sink=_moto_line(self.console.sink("moto")),
        )
        deadline = time.monotonic() + MOTO_START_TIMEOUT
        while True:
            if not self._moto.alive():
                raise StartError(f"moto exited with {self._moto.wait(0)} (see its output above)")
            try:
                with urllib.request.urlopen(f"{self.moto_url}/moto-api/", timeout=2):  # noqa: S310 - loopback URL
                    break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    raise StartError(
                        f"moto did not answer on {self.moto_url} in {MOTO_START_TIMEOUT:.0f} s"
                    ) from None
                time.sleep(0.2)
        # Without Docker: moto's Batch marks jobs done without running them (the executor runs them)
        # and its Lambda only echoes (the host runs the functions).
        request = urllib.request.Request(  # noqa: S310 - loopback URL
            f"{self.moto_url}/moto-api/config",
            data=json.dumps({"batch": {"use_docker": False}, "lambda": {"use_docker": False}}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - loopback URL
            pass

    def _app_settings(self) -> dict[str, str]:
        """Local replacements for what only exists in AWS (model folder, GPU, models bucket sync); an
        empty value removes the variable."""
        settings = {name: os.environ[name] for name in PASSED_APP_SETTINGS if os.environ.get(name)}
        settings.setdefault("MODEL_ROOT", str(Path("~/.insightface").expanduser()))
        return settings | {
            "EXECUTION_PROVIDER": "cpu",
            "REQUIRE_GPU": "false",
            "MODELS_S3_URI": "",
            "INDEX_DIR": str(self.state.index_dir),
        }

    def _function_specs(self, aws: LocalAws, resources: Resources) -> dict[str, FunctionSpec]:
        """Each function as Terraform created it, running with its role's credentials. Only the app's
        address differs: the controller and the idle stopper reach the app on 127.0.0.1."""
        app_url = self.app_url or loopback_url(self.options.app_port)
        overrides = {
            "controller": {"APP_URL_OVERRIDE": app_url, "APP_PORT": str(self.options.app_port)},
            "idle_stopper": {
                "APP_URL_OVERRIDE": app_url,
                "APP_PORT": str(self.options.app_port),
                "AUTO_SHUTDOWN_IDLE_TIME": str(self.options.auto_shutdown_idle_time),
            },
        }
        specs = {}
        for key, function in resources.functions.items():
            environment = dict(function.environment) | overrides.get(key, {})
            runtime = runtime_variables(function.name, function.memory, resources.region)
            credentials = role_credentials(aws, function.role_arn, function.name)
            specs[key] = FunctionSpec(
                key=key,
                name=function.name,
                arn=function.arn,
                handler=function.handler,
                role_arn=function.role_arn,
                timeout=function.timeout,
                memory=function.memory,
                async_retries=function.async_retries,
                environment=environment,
                runtime_environment=child_environment(self.aws_env | credentials, environment | runtime),
                dead_letter_queue_url=function.dead_letter_queue_url,
                log_group=runtime["AWS_LAMBDA_LOG_GROUP_NAME"],
            )
        return specs

    @staticmethod
    def _saved_buckets(resources: Resources) -> list[str]:
        return [resources.input_bucket, resources.output_bucket, resources.models_bucket]

    def status(self) -> dict[str, Any]:
        supervisor = next((loop for loop in self._loops if isinstance(loop, AppSupervisor)), None)
        return {
            "moto": self.moto_url,
            "lambda": self.lambda_url,
            "state_dir": str(self.state.root),
            "instance": supervisor.status() if supervisor is not None else None,
        }

    # --- stop ----------------------------------------------------------------------------------
    def stop(self) -> None:
        """Everything, in the reverse order of the start; safe after a partial start."""
        for loop in reversed(self._loops):
            self._quietly(f"stopping {loop.name}", loop.stop)
        if self._host is not None:
            self._quietly("stopping the Lambda host", self._host.stop)
        if (
            self._aws is not None
            and self.resources is not None
            and self._moto is not None
            and self._moto.alive()
        ):
            s3, buckets = self._aws.client("s3"), self._saved_buckets(self.resources)
            self._quietly(
                "saving the buckets",
                lambda: self.log(f"{self.state.save_buckets(s3, buckets)} S3 object(s) saved"),
            )
        if self._moto is not None:
            self._quietly("stopping moto", lambda: self._moto.stop(grace=10) if self._moto else None)
        if self._watchdog is not None:
            self._quietly(
                "stopping the watchdog", lambda: self._watchdog.stop(grace=5) if self._watchdog else None
            )
        leftovers = marked_processes(self.run_id)
        if leftovers:
            # Something daemonised itself out of its process tree; it is still ours to stop.
            self.log(f"stopping {len(leftovers)} leftover process(es): {leftovers}")
            for pid in leftovers:
                self._quietly(f"killing {pid}", functools.partial(os.kill, pid, signal.SIGKILL))
        self.state.unlock()
        self.log("stopped")

    def _quietly(self, what: str, action: Callable[[], object]) -> None:
        try:
            action()
        except Exception as exc:  # keep stopping the rest
            self.log(f"{what} failed: {type(exc).__name__}: {exc}")


def _without_empty(variables: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in variables.items() if value != ""}


def _moto_ami(aws: LocalAws) -> str:
    """An x86_64 Amazon Linux 2 AMI from moto's catalogue (moto's RunInstances needs a known AMI)."""
    images = aws.client("ec2").describe_images(
        Owners=["amazon"], Filters=[{"Name": "name", "Values": ["amzn2-ami-hvm-*-x86_64-gp2"]}]
    )["Images"]
    if not images:
        raise StartError("moto offers no Amazon Linux 2 x86_64 AMI")
    return str(sorted(images, key=lambda image: image["Name"])[-1]["ImageId"])
