"""The generic script job (the dispatcher's `batch_job` trigger): fetch a script, run it, keep its outputs.

1. Download SCRIPT_KEY from ML_INPUT_BUCKET into a fresh workspace (the script's working directory).
2. Run it (.py with this interpreter, .sh with bash) with the job's environment plus OUTPUT_DIR,
   streaming its stdout/stderr line by line with a prefix (CloudWatch gets them as they come).
3. Upload every file under OUTPUT_DIR to s3://ML_OUTPUT_BUCKET/OUTPUT_PREFIX/<relative path>, and
   the run's own record under _job/ (script.log, result.json), also when the script failed.
4. Exit with the script's exit code.
"""

from __future__ import annotations

import contextlib
import json
import logging
import mimetypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

import gpu_app
from gpu_app.batch import EXIT_FAILED, ConfigError, output_key, require
from gpu_app.config import DEFAULT_SCRIPT_OUTPUT_DIR

log = logging.getLogger(__name__)

INTERPRETERS = {".py": [sys.executable, "-u"], ".sh": ["bash"]}
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass(frozen=True, slots=True)
class ScriptConfig:
    script_key: str
    input_bucket: str
    output_bucket: str
    output_prefix: str
    output_dir: Path = Path(DEFAULT_SCRIPT_OUTPUT_DIR)
    workspace: Path | None = None  # default: a new temporary directory
    job_id: str | None = None  # AWS Batch's, recorded in the run's result.json
    job_attempt: str | None = None

    def validate(self) -> None:
        require(
            [
                ("SCRIPT_KEY", "--script-key", self.script_key),
                ("ML_INPUT_BUCKET", "--input-bucket", self.input_bucket),
                ("ML_OUTPUT_BUCKET", "--output-bucket", self.output_bucket),
                ("OUTPUT_PREFIX", "--output-prefix", self.output_prefix.strip("/")),
            ]
        )
        if PurePosixPath(self.script_key).suffix not in INTERPRETERS:
            raise ConfigError(
                f"SCRIPT_KEY {self.script_key!r} must end in {' or '.join(INTERPRETERS)} (how it is run)"
            )

    def output_key(self, relative: str) -> str:
        return output_key(self.output_prefix, relative)


class _Signals:
    """SIGTERM/SIGINT go to the script while it runs (Batch: timeout, cancel, spot reclaim); after
    it, they are logged and ignored so the outputs still get uploaded before Batch's SIGKILL."""

    def __init__(self) -> None:
        self.child: subprocess.Popen[bytes] | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in FORWARDED_SIGNALS}
        return self

    def __exit__(self, *exc_info: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        child = self.child
        if child is None or child.poll() is not None:
            log.warning("got %s: finishing the uploads first", name)
            return
        log.warning("got %s: forwarding it to the script", name)
        with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
            os.killpg(child.pid, signum)


class _LogPump:
    """Copies a child's stdout and stderr line by line to ours, prefixed, and into one log file."""

    def __init__(self, name: str, log_path: Path) -> None:
        self.name = name
        self._file = log_path.open("w", encoding="utf-8")
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def pump(self, stream: IO[bytes], target: IO[str], label: str) -> None:
        def copy() -> None:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                with self._lock:
                    print(f"[{label}] {line}", file=target, flush=True)
                    if not self._file.closed:
                        self._file.write(f"{label}: {line}\n")
            stream.close()

        thread = threading.Thread(target=copy, name=f"pump-{label}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def close(self) -> None:
        # A background process the script left behind may hold the pipes open: do not wait forever.
        for thread in self._threads:
            thread.join(timeout=10)
        with self._lock:
            self._file.close()


def run_script(config: ScriptConfig) -> int:
    import boto3
    from botocore.config import Config

    config.validate()
    s3 = boto3.client("s3", config=Config(retries={"mode": "standard", "total_max_attempts": 6}))
    own_workspace = config.workspace is None
    workspace = config.workspace or Path(tempfile.mkdtemp(prefix="batch-job-"))
    workspace.mkdir(parents=True, exist_ok=True)
    try:
        return _download_run_upload(config, s3, workspace)
    finally:
        if own_workspace:
            shutil.rmtree(workspace, ignore_errors=True)


def _download_run_upload(config: ScriptConfig, s3: Any, workspace: Path) -> int:
    from botocore.exceptions import ClientError

    script = workspace / PurePosixPath(config.script_key).name
    try:
        s3.download_file(config.input_bucket, config.script_key, str(script))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
            raise ConfigError(
                f"SCRIPT_KEY {config.script_key!r} does not exist in s3://{config.input_bucket}"
            ) from None
        raise
    output_dir = config.output_dir.resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    log.info(
        "running s3://%s/%s in %s, outputs from %s",
        config.input_bucket,
        config.script_key,
        workspace,
        output_dir,
    )

    started = time.monotonic()
    with _Signals() as signals, tempfile.TemporaryDirectory(prefix="batch-job-record-") as record:
        record_dir = Path(record)
        code = _run(script, workspace, output_dir, record_dir / "script.log", signals)
        seconds = time.monotonic() - started
        log.info("script exited with %d after %.1fs", code, seconds)
        return _upload_all(config, s3, output_dir, record_dir, code, seconds)


def _upload_all(
    config: ScriptConfig, s3: Any, output_dir: Path, record_dir: Path, code: int, seconds: float
) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    uploaded, failed = 0, []
    destination = f"s3://{config.output_bucket}/{config.output_key('')}"
    for path, relative in _files(output_dir):
        try:
            _upload(s3, path, config.output_bucket, config.output_key(relative))
            uploaded += 1
        except (BotoCoreError, ClientError, OSError) as exc:
            failed.append(relative)
            log.error("could not upload %s: %s", relative, exc)
    result = {
        "script_key": config.script_key,
        "exit_code": code,
        "seconds": round(seconds, 3),
        "uploaded_files": uploaded,
        "failed_uploads": failed,
        "job_id": config.job_id,
        "job_attempt": config.job_attempt,
    }
    (record_dir / "result.json").write_text(json.dumps(result, indent=2))
    for name in ("script.log", "result.json"):
        try:
            _upload(s3, record_dir / name, config.output_bucket, config.output_key(f"_job/{name}"))
        except (BotoCoreError, ClientError, OSError) as exc:
            failed.append(f"_job/{name}")
            log.error("could not upload _job/%s: %s", name, exc)
    log.info(
        "uploaded %d file(s) to %s%s", uploaded, destination, f", {len(failed)} failed" if failed else ""
    )
    if failed and code == 0:
        return EXIT_FAILED  # the script worked but its outputs are not where they should be
    return code


def _run(script: Path, workspace: Path, output_dir: Path, log_path: Path, signals: _Signals) -> int:
    # The script gets the job's whole environment (it reads no setting here, it hands them on).
    env = os.environ.copy()
    env["OUTPUT_DIR"] = str(output_dir)
    env["WORKSPACE_DIR"] = str(workspace)
    # Scripts may import the app (the examples use its face engine) from any working directory.
    app_root = str(Path(gpu_app.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (app_root, env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    command = [*INTERPRETERS[script.suffix], str(script)]
    # Own process group: a forwarded SIGTERM reaches the script's children too.
    proc = subprocess.Popen(
        command,
        cwd=workspace,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    pump = _LogPump(script.name, log_path)
    assert proc.stdout is not None and proc.stderr is not None
    pump.pump(proc.stdout, sys.stdout, script.name)
    pump.pump(proc.stderr, sys.stderr, f"{script.name}:stderr")

    signals.child = proc
    try:
        code = proc.wait()
    finally:
        signals.child = None
        pump.close()
    return 128 - code if code < 0 else code  # killed by signal N: the shell's 128 + N


def _files(root: Path) -> Iterator[tuple[Path, str]]:
    """Regular files under root, sorted; symlinks are skipped (they could point outside it)."""
    found = []
    for folder, _, names in os.walk(root):  # does not descend into symlinked folders
        for name in names:
            path = Path(folder) / name
            if path.is_file() and not path.is_symlink():
                found.append((path, path.relative_to(root).as_posix()))
    yield from sorted(found, key=lambda item: item[1])


def _upload(s3: Any, path: Path, bucket: str, key: str) -> None:
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    s3.upload_file(str(path), bucket, key, ExtraArgs={"ContentType": content_type})
