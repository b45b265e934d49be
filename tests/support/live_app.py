"""The real app as users run it: `python -m gpu_app serve` in its own process on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.support.moto_server import free_port

REPO = Path(__file__).resolve().parents[2]
SHARED_MODEL_ROOT = REPO.parent / "shared" / "models" / "insightface"


@dataclass(frozen=True, slots=True)
class App:
    url: str
    pid: int


def app_env(state: Path, **overrides: str) -> dict[str, str]:
    """Environment of an app on the offline pack with its state under `state`."""
    return {
        "MODEL_ROOT": os.environ.get("MODEL_ROOT", str(SHARED_MODEL_ROOT)),
        "MODEL_PACK": os.environ.get("MODEL_PACK", "offline_sc"),
        "LOCAL_STORAGE_DIR": str(state / "images"),
        "INDEX_DIR": str(state / "index"),
        "JOB_SPOOL_DIR": str(state / "spool"),
    } | overrides


@contextmanager
def run_app(env: Mapping[str, str], log_path: Path, timeout: float = 120.0) -> Iterator[App]:
    """Start the app with exactly `env`, its output in `log_path`, and wait for /ready.

    Output goes to a file: a pipe nobody reads would stall the app once its buffer fills.
    Stops it (SIGTERM, then SIGKILL) afterwards.
    """
    port = free_port()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as output:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gpu_app", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO,
            env=dict(env),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"app exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
                try:
                    if requests.get(f"{url}/ready", timeout=2).status_code == 200:
                        break
                except requests.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"app at {url} not ready after {timeout}s; log: {log_path}")
                time.sleep(0.2)
            yield App(url, proc.pid)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def live_app(env: dict[str, str], timeout: float = 120.0) -> Iterator[str]:
    """The app with this process's environment plus `env`; yields its URL."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        run_app(os.environ | env, Path(tmp) / "app.log", timeout) as app,
    ):
        yield app.url
