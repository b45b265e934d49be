"""The Batch jobs build their model and index as the app does (gpu_app/assembly.py): real processes,
the real model, S3 on moto."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.batch.conftest import Buckets, JobEnv, blank_images, run_job

pytestmark = pytest.mark.slow


def test_embed_job_leaves_no_spool_folder_behind(buckets: Buckets, job_env: JobEnv, tmp_path: Path) -> None:
    """Images waiting for an index retry stay in the job's memory (it retries them itself); a spool
    folder per run would pile up on a host whose containers share /tmp."""
    buckets.put("in/blank.jpg", blank_images()["h_blank1.jpg"])
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = job_env(INPUT_PREFIX="in/", OUTPUT_PREFIX="jobs/spool-test/", TMPDIR=str(scratch))
    code, output = run_job("embed", env, tmp_path)
    assert code == 0, output
    assert [p.name for p in scratch.iterdir() if p.name.startswith("embed-spool-")] == []


@pytest.mark.parametrize("command", ["embed", "video"])
def test_require_gpu_on_cpu_is_a_configuration_error(
    command: str, buckets: Buckets, job_env: JobEnv, tmp_path: Path
) -> None:
    """Both model jobs refuse a CPU fallback when REQUIRE_GPU=true (exit 2: a retry cannot help)."""
    buckets.put("in/blank.jpg", blank_images()["h_blank1.jpg"])
    buckets.put("in/clip.mp4", b"not read: the job stops before")
    env = job_env(
        INPUT_PREFIX="in/", VIDEO_KEY="in/clip.mp4", OUTPUT_PREFIX="jobs/gpu-test/", REQUIRE_GPU="true"
    )
    code, output = run_job(command, env, tmp_path)
    assert code == 2, output
    assert "REQUIRE_GPU=true but the models run on" in output
    # Nothing processed: no manifest, results or summary (the embed job pins its input list first).
    assert set(buckets.keys("jobs/gpu-test/")) <= {"jobs/gpu-test/inputs.jsonl"}
