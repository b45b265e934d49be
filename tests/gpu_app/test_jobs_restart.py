"""A restart resumes every spooled job however many there are, and SIGTERM is clean at any moment
(issue 12, item 2): the real app process, its real spool."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from gpu_app.upload_jobs import write_spool
from tests.support.images import blank_jpeg
from tests.support.live_app import REPO, app_env, run_app
from tests.support.moto_server import free_port

JOBS = 6  # three times JOB_QUEUE_SIZE
SMALL_QUEUE = {"JOB_QUEUE_SIZE": "2", "JOB_WORKERS": "1"}


def spool_jobs(spool: Path) -> dict[str, list[bytes]]:
    """Jobs as an accepted upload leaves them on disk (the app's own spool writer)."""
    jobs = {}
    for n in range(JOBS):
        files = [(f"blank{n}-{i}.jpg", blank_jpeg(seed=10 * n + i)) for i in range(2)]
        jobs[write_spool(spool / "jobs", files, "default").id] = [data for _, data in files]
    return jobs


def wait_for_line(log: Path, text: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"no {text!r} in the log: {log.read_text()[-3000:]}"
        time.sleep(0.05)


def test_more_spooled_jobs_than_the_queue_holds_resume_and_sigterm_is_clean(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = os.environ | app_env(state, **SMALL_QUEUE)
    jobs = spool_jobs(state / "spool")

    # SIGTERM while the spool is being recovered (and its first jobs run): a clean exit.
    log = tmp_path / "first.log"
    port = str(free_port())
    with log.open("w") as output:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gpu_app", "serve", "--host", "127.0.0.1", "--port", port],
            cwd=REPO,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_line(log, "resuming spooled job", proc)
            proc.send_signal(signal.SIGTERM)
            # uvicorn re-raises the signal once shut down: -SIGTERM is its clean exit.
            assert proc.wait(timeout=60) in (0, -signal.SIGTERM), log.read_text()[-3000:]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert "Application shutdown complete" in log.read_text()
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]

    # The next start runs every job, although the queue holds two: none is lost, none waits forever.
    with run_app(env, tmp_path / "second.log", timeout=90) as app:
        deadline = time.monotonic() + 120
        for job_id, sent in jobs.items():
            while (job := requests.get(f"{app.url}/jobs/{job_id}", timeout=10)).status_code != 200 or (
                job.json()["status"] != "succeeded"
            ):
                assert time.monotonic() < deadline, job.text
                time.sleep(0.1)
            results = job.json()["results"]
            assert [r["status"] for r in results] == ["ok", "ok"], results
            stored = [(state / "images" / r["storage_key"]).read_bytes() for r in results]
            assert stored == sent
    assert not list((state / "spool" / "jobs").glob("*/0*"))  # no spooled copy left
