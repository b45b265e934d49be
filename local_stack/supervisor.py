"""The GPU instance, locally: the app process runs exactly while moto says the instance is running.

moto's StartInstances/StopInstances only flip a state; this loop makes the flip real. When the
instance turns `running` the app starts (as the instance's user data starts the container on
boot), so the controller's wait for `/health` works as against a booting instance; when it turns
`stopped` the app gets SIGTERM, and requests are refused until the next start. The app's state
(index, spool) lives in the state folder and survives the restarts, as an EBS volume would.
Like the container's `--restart unless-stopped`, an app that exits while the instance runs is
started again, with a growing delay.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import Any, Final

from lambdas.common.app_client import probe_health
from local_stack.cloudwatch import CloudWatchStream
from local_stack.local_aws import LOOPBACK, REPO, LocalAws
from local_stack.processes import Console, Loop, ManagedProcess

POLL_SECONDS: Final = 1.0
STOP_GRACE_SECONDS: Final = 20.0
MAX_RESTART_DELAY: Final = 30.0
# How long an app that does not answer yet counts as booting (an instance is `pending` about this long).
BOOT_WINDOW_SECONDS: Final = 120.0


class AppSupervisor(Loop):
    def __init__(
        self,
        aws: LocalAws,
        instance_id: str,
        port: int,
        env: Mapping[str, str],
        console: Console,
        log_stream: tuple[str, str] | None = None,
    ) -> None:
        super().__init__("supervisor", POLL_SECONDS, self._reconcile, console.sink("supervisor"))
        self._ec2, self._logs = aws.client("ec2"), aws.client("logs")
        self._log_stream = log_stream
        self._cloudwatch: CloudWatchStream | None = None
        self._console = console
        self.instance_id = instance_id
        self.url = f"http://{LOOPBACK}:{port}"
        self._command = [sys.executable, "-m", "gpu_app", "serve", "--host", LOOPBACK, "--port", str(port)]
        self._env = dict(env)
        self._app: ManagedProcess | None = None
        self._reachable = False
        self._restarts = 0
        self._restart_at = 0.0
        self._started_at = 0.0
        self.instance_state = "unknown"

    @property
    def booting(self) -> bool:
        """The instance runs but its app does not answer yet (EC2 would still say `pending`); an app that
        never answers stops counting as booting, so the idle stopper's unreachable rule can act."""
        recent = time.monotonic() - self._started_at < BOOT_WINDOW_SECONDS
        return self.instance_state == "running" and not self._reachable and recent

    def status(self) -> dict[str, Any]:
        app = self._app
        return {
            "instance_id": self.instance_id,
            "instance_state": self.instance_state,
            "app_url": self.url,
            "app_pid": app.pid if app is not None and app.alive() else None,
            "app_reachable": self._reachable,
        }

    def _reconcile(self) -> None:
        if self._cloudwatch is not None:
            self._cloudwatch.flush()  # the app's output reaches its log stream within a poll
        reservations = self._ec2.describe_instances(InstanceIds=[self.instance_id])["Reservations"]
        self.instance_state = reservations[0]["Instances"][0]["State"]["Name"]
        if self.instance_state != "running":
            if self._app is not None:
                self._log(f"instance {self.instance_id} is {self.instance_state}: stopping the app")
                self._stop_app()
            return
        if self._app is None or not self._app.alive():
            self._start_app()
        elif not self._reachable:
            self._reachable = probe_health(self.url, timeout=1.0).reachable
            if self._reachable:
                self._restarts = 0
                self._log(f"the app answers on {self.url}")

    def _start_app(self) -> None:
        if self._app is None:  # a boot: the booting window counts from here
            self._started_at = time.monotonic()
        else:  # it exited while the instance runs: a restart, after a growing delay
            code = self._app.wait(0)
            if self._restart_at == 0.0:
                delay = min(2.0**self._restarts, MAX_RESTART_DELAY)
                self._restart_at = time.monotonic() + delay
                self._log(f"the app exited with {code}; starting it again in {delay:.0f} s")
            if time.monotonic() < self._restart_at:
                return
            self._restarts += 1
        self._restart_at = 0.0
        self._reachable = False
        self._log(f"instance {self.instance_id} is running: starting the app on {self.url}")
        show = self._console.sink("app")
        if self._log_stream is not None:
            # The container's awslogs driver: the app's output in the instance's log group.
            group, stream = self._log_stream
            self._cloudwatch = CloudWatchStream(self._logs, group, stream, self._log)
        cloudwatch = self._cloudwatch

        def sink(line: str) -> None:
            show(line)
            if cloudwatch is not None:
                cloudwatch.add(line)

        self._app = ManagedProcess("app", self._command, env=self._env, cwd=REPO, sink=sink)

    def _stop_app(self) -> None:
        app, self._app = self._app, None
        self._reachable = False
        self._restarts, self._restart_at = 0, 0.0
        if app is not None:
            code = app.stop(grace=STOP_GRACE_SECONDS)
            self._log(f"the app stopped ({code})")

    def stop(self, timeout: float = 30.0) -> None:
        super().stop(timeout)
        self._stop_app()
