"""The real app as users run it: `python -m gpu_app serve` in its own process on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.support.moto_server import free_port

REPO = Path(__file__).resolve().parents[2]
SHARED_MODEL_ROOT = REPO.parent / "shared" / "models" / "insightface"


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
def live_app(env: dict[str, str], timeout: float = 120.0) -> Iterator[str]:
    """Start the app, wait for /ready, yield its URL; stop it (SIGTERM, then SIGKILL) afterwards."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gpu_app", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO,
        env=os.environ | env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"app exited with {proc.returncode}:\n{proc.stdout.read() if proc.stdout else ''}"
                )
            try:
                if requests.get(f"{url}/ready", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"app at {url} not ready after {timeout}s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
