"""The local Lambda service: the real handlers in containers, behind the Lambda Invoke REST API.

Each function runs in its own long-lived worker processes ("containers", `worker.py`) whose
environment is exactly that function's (env.py variables valued as Terraform sets them, plus the
variables the Lambda runtime sets), so per-container caches behave as in AWS. A function scales out
to `MAX_CONTAINERS` containers; a container runs one invocation at a time and is replaced when it
crashes or times out.

`POST /2015-03-31/functions/{FunctionName}/invocations` accepts a name, a partial or full ARN, and
the qualifier `$LATEST`. `X-Amz-Invocation-Type`:
- `RequestResponse` (default): 200 with the handler's result; an unhandled error answers 200 with
  `{"errorMessage", "errorType", "requestId", "stackTrace"}` and `X-Amz-Function-Error: Unhandled`;
- `Event`: 202 at once; Lambda's asynchronous queue retries a failed event (`async_retries`, as
  Terraform's `maximum_retry_attempts`), then sends it to the function's dead-letter queue;
- `DryRun`: 204.
`X-Amz-Log-Type: Tail` adds `X-Amz-Log-Result`, the base64 of the invocation's last 4 KB of log.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
import queue
import subprocess
import sys
import threading
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

from local_stack.cloudwatch import CloudWatchStream
from local_stack.local_aws import LOOPBACK, REPO, LocalAws
from local_stack.processes import Console, ManagedProcess
from local_stack.worker import error_payload

MAX_CONTAINERS: Final = 4
# Lambda waits 1 then 2 minutes between asynchronous attempts; locally seconds keep a try short.
RETRY_DELAYS: Final = (1.0, 2.0)
INIT_TIMEOUT: Final = 60.0
THROTTLE_WAIT: Final = 30.0
MAX_THROTTLES: Final = 20
MAX_SYNC_PAYLOAD: Final = 6 * 1024 * 1024
MAX_ASYNC_PAYLOAD: Final = 256 * 1024
LOG_TAIL_BYTES: Final = 4096
_INVOKE_PATH: Final = "/2015-03-31/functions/"


@dataclasses.dataclass(frozen=True)
class FunctionSpec:
    """A function as Terraform created it in moto (handler, role, limits, retries, DLQ), plus the
    environment its containers get (its variables, the runtime's, and its role's credentials)."""

    key: str  # dispatcher | controller | monitor | idle_stopper
    name: str
    arn: str
    handler: str
    role_arn: str
    timeout: int
    memory: int
    async_retries: int
    environment: Mapping[str, str]  # the function's own variables (what `aws lambda` shows)
    runtime_environment: Mapping[str, str]  # everything the container process gets
    dead_letter_queue_url: str
    log_group: str = ""

    def configuration(self) -> dict[str, Any]:
        """The FunctionConfiguration `aws lambda list-functions` shows."""
        return {
            "FunctionName": self.name,
            "FunctionArn": self.arn,
            "Runtime": "python3.12",
            "Role": self.role_arn,
            "Handler": self.handler,
            "Timeout": self.timeout,
            "MemorySize": self.memory,
            "Version": "$LATEST",
            "PackageType": "Zip",
            "Architectures": ["x86_64"],
            "State": "Active",
            "Environment": {"Variables": dict(self.environment)},
            "DeadLetterConfig": {"TargetArn": self.dead_letter_queue_url},
        }


def runtime_variables(name: str, memory: int, region: str) -> dict[str, str]:
    """Variables the Lambda runtime sets in every container."""
    stream = f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
    return {
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": stream,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "PYTHONPATH": str(REPO),
        "PYTHONUNBUFFERED": "1",
        "TZ": "UTC",
    }


@dataclasses.dataclass(frozen=True)
class Invocation:
    request_id: str
    payload: Any  # the handler's result, or Lambda's error body
    error: bool
    log: str = ""


@dataclasses.dataclass(frozen=True)
class RawPayload:
    """An Invoke request's body as it came: the container unmarshals it, as Lambda's runtime does, so
    a payload Python cannot load (nested too deep) is the function's Runtime.UnmarshalError."""

    text: str


def payload_text(event: Any) -> str:
    return event.text if isinstance(event, RawPayload) else json.dumps(event)


class ContainerError(RuntimeError):
    """The container could not start (its init crashed or hung)."""


class Container:
    """One worker process of a function: one invocation at a time, its log lines on the console."""

    def __init__(
        self, spec: FunctionSpec, label: str, console: Console, cloudwatch: CloudWatchStream | None = None
    ) -> None:
        self.spec = spec
        self._console_line = console.sink(label)
        self._cloudwatch = cloudwatch
        self._answers: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._capture: list[str] | None = None
        self._captured: list[str] = []
        self._reported = threading.Event()
        read_fd, write_fd = os.pipe()
        try:
            self.process = ManagedProcess(
                label,
                [sys.executable, "-m", "local_stack.worker", spec.handler, str(write_fd)],
                env=spec.runtime_environment,
                cwd=REPO,
                sink=self._log,
                pass_fds=[write_fd],
                stdin=subprocess.PIPE,
            )
        finally:
            os.close(write_fd)
        threading.Thread(target=self._read_answers, args=(read_fd,), daemon=True).start()
        try:
            ready = self._answers.get(timeout=INIT_TIMEOUT)
        except queue.Empty:
            ready = None
        if not ready or not ready.get("ready"):
            self.process.stop(grace=1)
            raise ContainerError(f"{spec.name}: the container did not start")

    def _read_answers(self, read_fd: int) -> None:
        with os.fdopen(read_fd) as answers:
            for line in answers:
                self._answers.put(json.loads(line))
        self._answers.put(None)  # the process is gone

    def _log(self, line: str) -> None:
        self._console_line(line)
        if self._cloudwatch is not None:
            self._cloudwatch.add(line)
            if line.startswith("REPORT RequestId: "):
                self._cloudwatch.flush()  # one invocation's log at a time, as `aws logs tail` shows it
        if line.startswith("START RequestId: "):
            self._capture = []
        if self._capture is not None:
            self._capture.append(line)
        if line.startswith("REPORT RequestId: "):
            self._captured, self._capture = self._capture or [], None
            self._reported.set()

    def alive(self) -> bool:
        return self.process.alive()

    def invoke(self, request_id: str, event: Any, invoked_arn: str) -> Invocation:
        timeout = self.spec.timeout
        deadline_ms = int(datetime.now(UTC).timestamp() * 1000) + timeout * 1000
        request = {
            "request_id": request_id,
            "payload": payload_text(event),
            "invoked_function_arn": invoked_arn,
        }
        self._reported.clear()
        try:
            assert self.process.popen.stdin is not None
            self.process.popen.stdin.write(json.dumps(request | {"deadline_ms": deadline_ms}) + "\n")
            self.process.popen.stdin.flush()
            answer = self._answers.get(timeout=timeout + 1.0)
        except (OSError, ValueError):
            answer = None
        except queue.Empty:
            self.process.stop(grace=1)
            message = f"RequestId: {request_id} Error: Task timed out after {timeout:.2f} seconds"
            return Invocation(
                request_id, {"errorType": "Sandbox.Timedout", "errorMessage": message}, error=True
            )
        if answer is None:
            self.process.stop(grace=1)
            message = f"RequestId: {request_id} Error: Runtime exited without providing a reason"
            error = {"errorType": "Runtime.ExitError", "errorMessage": message}
            return Invocation(request_id, error, error=True)
        self._reported.wait(1.0)  # the log pipe may trail the answer pipe by a moment
        log = "\n".join(self._captured) + "\n"
        if "error" in answer:
            return Invocation(request_id, answer["error"], error=True, log=log)
        return Invocation(request_id, answer["result"], error=False, log=log)

    def stop(self) -> None:
        if self.process.popen.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.popen.stdin.close()  # the worker exits when its input ends
        if self.process.wait(2.0) is None:
            self.process.stop(grace=2)


class TooManyRequestsError(RuntimeError):
    """Every container of the function stayed busy (Lambda's 429 TooManyRequestsException)."""


class FunctionPool:
    """The containers of one function, started on demand up to MAX_CONTAINERS and kept warm."""

    def __init__(
        self, spec: FunctionSpec, console: Console, logs: Callable[[str], CloudWatchStream] | None = None
    ) -> None:
        self.spec = spec
        self._console = console
        self._logs = logs
        self._idle: list[Container] = []
        self._all: list[Container] = []
        self._starting = 0
        self._serial = 0
        self._closed = False
        self._changed = threading.Condition()

    def _acquire(self) -> Container:
        with self._changed:
            deadline_ok = self._changed.wait_for(
                lambda: self._closed or self._idle or len(self._all) + self._starting < MAX_CONTAINERS,
                timeout=THROTTLE_WAIT,
            )
            if self._closed:
                raise ContainerError("the Lambda host is stopping")
            if not deadline_ok:
                raise TooManyRequestsError(
                    f"Rate Exceeded: {self.spec.name} has {MAX_CONTAINERS} busy containers"
                )
            if self._idle:
                return self._idle.pop()
            self._starting += 1
            self._serial += 1
            label = self.spec.key if self._serial == 1 else f"{self.spec.key}#{self._serial}"
        container: Container | None = None
        try:
            stream = f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
            cloudwatch = self._logs(stream) if self._logs is not None else None
            container = Container(self.spec, label, self._console, cloudwatch)
        finally:
            # One critical section, so that a starting container is always counted exactly once.
            with self._changed:
                self._starting -= 1
                closed = self._closed
                if container is not None and not closed:
                    self._all.append(container)
                self._changed.notify_all()
        assert container is not None  # Container() returned, or its error left above
        if closed:
            container.stop()
            raise ContainerError("the Lambda host is stopping")
        return container

    def _release(self, container: Container) -> None:
        with self._changed:
            keep = container.alive() and not self._closed
            if keep:
                self._idle.append(container)
            else:
                self._all.remove(container)
            self._changed.notify_all()
        if not keep:
            container.stop()

    def invoke(self, request_id: str, event: Any, invoked_arn: str) -> Invocation:
        try:
            container = self._acquire()
        except ContainerError as exc:
            return Invocation(request_id, error_payload(exc, request_id, "Runtime.ExitError"), error=True)
        try:
            return container.invoke(request_id, event, invoked_arn)
        finally:
            self._release(container)

    def stop(self) -> None:
        with self._changed:
            self._closed = True
            containers, self._idle = list(self._all), []
            self._changed.notify_all()
        for container in containers:
            container.stop()


class LambdaHost:
    """The four functions, invocable synchronously (HTTP API) or asynchronously (queue + retries)."""

    def __init__(self, specs: Mapping[str, FunctionSpec], aws: LocalAws, console: Console) -> None:
        self.specs = dict(specs)
        self._aws = aws
        self.pools = {
            key: FunctionPool(spec, console, self._log_stream_factory(spec, console))
            for key, spec in self.specs.items()
        }
        self._console = console.sink("lambda")
        self._async = ThreadPoolExecutor(max_workers=8, thread_name_prefix="lambda-async")
        self._stopping = threading.Event()
        self._observers: list[Callable[[str, Invocation], None]] = []
        self._views: dict[str, Callable[[], Any]] = {}
        self._server: ThreadingHTTPServer | None = None

    def _log_stream_factory(
        self, spec: FunctionSpec, console: Console
    ) -> Callable[[str], CloudWatchStream] | None:
        """Each container writes its own stream of the function's log group, as Lambda does."""
        if not spec.log_group:
            return None
        log = console.sink("lambda")
        return lambda stream: CloudWatchStream(self._aws.client("logs"), spec.log_group, stream, log)

    def observe(self, callback: Callable[[str, Invocation], None]) -> None:
        """Call `callback(function key, invocation)` after every invocation."""
        self._observers.append(callback)

    def add_view(self, path: str, view: Callable[[], Any]) -> None:
        """Serve `view()` as JSON at GET `path` (the stack's own status pages)."""
        self._views[path] = view

    def resolve(self, identifier: str, qualifier: str | None = None) -> FunctionSpec | None:
        """A function by name, `name:$LATEST`, `account:function:name` or its (qualified) ARN."""
        parts = identifier.split(":")
        if identifier.startswith("arn:"):
            parts = parts[6:]
        elif len(parts) >= 3 and parts[1] == "function":
            parts = parts[2:]
        if not parts or len(parts) > 2:
            return None
        version = parts[1] if len(parts) == 2 else qualifier
        if version not in (None, "", "$LATEST"):
            return None
        return next((spec for spec in self.specs.values() if spec.name == parts[0]), None)

    def invoke(self, key: str, event: Any, request_id: str | None = None) -> Invocation:
        spec = self.specs[key]
        invocation = self.pools[key].invoke(request_id or str(uuid.uuid4()), event, spec.arn)
        for observer in self._observers:
            observer(key, invocation)
        return invocation

    def invoke_async(self, key: str, event: Any) -> str:
        """Queue an event as `InvocationType=Event` does; returns the request id (kept across retries)."""
        request_id = str(uuid.uuid4())
        self._async.submit(self._run_async, key, event, request_id)
        return request_id

    def _run_async(self, key: str, event: Any, request_id: str) -> None:
        spec = self.specs[key]
        attempts, throttles = 0, 0
        try:
            while not self._stopping.is_set():
                try:
                    invocation = self.invoke(key, event, request_id)
                except TooManyRequestsError:
                    # Throttling is not an attempt: Lambda keeps the event queued (bounded here).
                    throttles += 1
                    if throttles > MAX_THROTTLES:
                        raise
                    continue
                if not invocation.error:
                    return
                attempts += 1
                error = f"{invocation.payload.get('errorType')}: {invocation.payload.get('errorMessage')}"
                self._console(f"{spec.name}: attempt {attempts} of event {request_id} failed: {error}")
                if attempts > spec.async_retries:
                    if not self._stopping.is_set():  # a stop cuts attempts short; that is no failure
                        self._dead_letter(spec, event, request_id, invocation)
                    return
                if self._stopping.wait(RETRY_DELAYS[min(attempts, len(RETRY_DELAYS)) - 1]):
                    return
        except Exception as exc:  # a background thread: report, never die silently
            self._console(f"{spec.name}: event {request_id} lost: {type(exc).__name__}: {exc}")

    def _dead_letter(self, spec: FunctionSpec, event: Any, request_id: str, invocation: Invocation) -> None:
        """What Lambda sends to a function's DLQ: the event as the body, the error as attributes."""
        message = str(invocation.payload.get("errorMessage", ""))[:1024]
        self._aws.client("sqs").send_message(
            QueueUrl=spec.dead_letter_queue_url,
            MessageBody=payload_text(event),
            MessageAttributes={
                "RequestID": {"DataType": "String", "StringValue": request_id},
                "ErrorCode": {"DataType": "Number", "StringValue": "200"},
                "ErrorMessage": {"DataType": "String", "StringValue": message or "-"},
            },
        )
        self._console(f"{spec.name}: retries exhausted for {request_id}; event sent to its dead-letter queue")

    # --- HTTP -------------------------------------------------------------------------------
    def serve(self, port: int) -> str:
        self._server = ThreadingHTTPServer((LOOPBACK, port), _make_handler(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="lambda-api", daemon=True).start()
        return f"http://{LOOPBACK}:{port}"

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self._async.shutdown(wait=False, cancel_futures=True)
        for pool in self.pools.values():
            pool.stop()
        self._async.shutdown(wait=True)


def _make_handler(host: LambdaHost) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "local-lambda"

        def log_message(self, format: str, *args: Any) -> None:
            host._console(
                f"{self.command} {urllib.parse.unquote(self.path)} -> {args[1] if len(args) > 1 else ''}"
            )

        def _send(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, value: Any, headers: Mapping[str, str] | None = None) -> None:
            self._send(status, json.dumps(value).encode(), headers)

        def _error(self, status: int, error_type: str, message: str) -> None:
            # The REST-JSON error shape botocore (and so the CLI) reads: type in the header.
            self._json(status, {"Type": "User", "message": message}, {"x-amzn-ErrorType": error_type})

        def do_GET(self) -> None:
            path = urllib.parse.urlsplit(self.path).path
            if path.rstrip("/") == _INVOKE_PATH.rstrip("/"):
                functions = [spec.configuration() for spec in host.specs.values()]
                self._json(200, {"Functions": functions})
            elif path in host._views:
                self._json(200, host._views[path]())
            else:
                self._error(404, "UnknownOperationException", f"no route for GET {path}")

        def do_POST(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            parts = url.path.removeprefix(_INVOKE_PATH).split("/")
            length = int(self.headers.get("Content-Length") or 0)
            if not url.path.startswith(_INVOKE_PATH) or len(parts) != 2 or parts[1] != "invocations":
                self.close_connection = True
                self._error(404, "UnknownOperationException", f"no route for POST {url.path}")
                return
            name = urllib.parse.unquote(parts[0])
            qualifier = urllib.parse.parse_qs(url.query).get("Qualifier", [None])[0]
            spec = host.resolve(name, qualifier)
            if spec is None:
                self.close_connection = True
                self._error(404, "ResourceNotFoundException", f"Function not found: {name}")
                return
            invocation_type = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
            limit = MAX_ASYNC_PAYLOAD if invocation_type == "Event" else MAX_SYNC_PAYLOAD
            if length > limit:
                self.close_connection = True
                self._error(413, "RequestTooLargeException", f"Request must be smaller than {limit} bytes")
                return
            body = self.rfile.read(length) if length else b""
            text = body.decode("utf-8", errors="surrogateescape") if body.strip() else "{}"
            try:
                json.loads(text)
            except RecursionError:
                pass  # valid JSON nested deeper than Python loads: the runtime's error, not the API's
            except ValueError as exc:
                self._error(
                    400, "InvalidRequestContentException", f"Could not parse request body into json: {exc}"
                )
                return
            event = RawPayload(text)
            if invocation_type == "DryRun":
                self._send(204, b"")
            elif invocation_type == "Event":
                request_id = host.invoke_async(spec.key, event)
                self._send(202, b"", {"x-amzn-RequestId": request_id})
            elif invocation_type == "RequestResponse":
                self._respond(spec, event)
            else:
                self._error(
                    400, "InvalidParameterValueException", f"bad X-Amz-Invocation-Type {invocation_type}"
                )

        def _respond(self, spec: FunctionSpec, event: Any) -> None:
            try:
                invocation = host.invoke(spec.key, event)
            except TooManyRequestsError as exc:
                self._error(HTTPStatus.TOO_MANY_REQUESTS, "TooManyRequestsException", str(exc))
                return
            headers = {"X-Amz-Executed-Version": "$LATEST", "x-amzn-RequestId": invocation.request_id}
            if invocation.error:
                headers["X-Amz-Function-Error"] = "Unhandled"
            if self.headers.get("X-Amz-Log-Type") == "Tail":
                tail = invocation.log.encode()[-LOG_TAIL_BYTES:]
                headers["X-Amz-Log-Result"] = base64.b64encode(tail).decode()
            self._json(200, invocation.payload, headers)

    return Handler
