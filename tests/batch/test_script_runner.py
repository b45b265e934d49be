"""`python -m gpu_app.batch run-script`: download, run, stream, upload, exit with the script's code."""

from __future__ import annotations

import csv
import io
import json
import signal
from pathlib import Path

import numpy as np
import pytest

from gpu_app.batch.__main__ import main
from tests.batch.conftest import (
    INPUT_BUCKET,
    OUTPUT_BUCKET,
    PROCESS_TIMEOUT,
    REPO,
    Buckets,
    JobEnv,
    blank_images,
    corrupt_image,
    face_images,
    start_job,
)
from tests.gpu_app.conftest import MODEL_PACK, MODEL_ROOT

OUT = "jobs/faces/exp-1/run-test/"

WRITER = """\
import os, pathlib, sys
out = pathlib.Path(os.environ["OUTPUT_DIR"])
(out / "sub").mkdir(parents=True, exist_ok=True)
(out / "result.txt").write_text("done\\n")
(out / "sub" / "data.json").write_text('{"n": 1}')
print("hello from", os.environ["TRIGGER_PROJECT"], os.environ["COMPUTE_TYPE"])
print("in workspace:", pathlib.Path.cwd() == pathlib.Path(os.environ["WORKSPACE_DIR"]))
print("to stderr", file=sys.stderr)
"""

FAILING = """\
echo "partial" > "$OUTPUT_DIR/partial.txt"
echo "about to fail"
exit 3
"""

TRAPS_SIGTERM = """\
import os, pathlib, signal, sys, time
out = pathlib.Path(os.environ["OUTPUT_DIR"])
def stop(signum, frame):
    (out / "terminated.txt").write_text(f"signal {signum}")
    print("cleaning up", flush=True)
    sys.exit(7)
signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
time.sleep(30)
"""


@pytest.fixture
def job(buckets: Buckets, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Buckets:
    """The job's environment in this process (the runner is called in-process through `main`)."""
    for name, value in {
        "ML_INPUT_BUCKET": INPUT_BUCKET,
        "ML_OUTPUT_BUCKET": OUTPUT_BUCKET,
        "OUTPUT_PREFIX": OUT,
        "COMPUTE_TYPE": "cpu",
        "TRIGGER_PROJECT": "faces",
        "OUTPUT_DIR": str(tmp_path / "output"),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SCRIPT_KEY", raising=False)
    return buckets


def test_runs_the_script_streams_its_output_and_uploads_what_it_wrote(
    job: Buckets, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    job.put("jobs/writer.py", WRITER.encode())
    code = main(["run-script", "--script-key", "jobs/writer.py", "--workspace", str(tmp_path / "ws")])
    assert code == 0
    captured = capsys.readouterr()
    assert "[writer.py] hello from faces cpu" in captured.out
    assert "[writer.py] in workspace: True" in captured.out
    assert "[writer.py:stderr] to stderr" in captured.err

    assert job.keys(OUT) == [
        f"{OUT}_job/result.json",
        f"{OUT}_job/script.log",
        f"{OUT}result.txt",
        f"{OUT}sub/data.json",
    ]
    assert job.get(f"{OUT}result.txt") == b"done\n"
    assert job.json(f"{OUT}sub/data.json") == {"n": 1}
    log = job.get(f"{OUT}_job/script.log").decode()
    assert "hello from faces cpu" in log and "to stderr" in log
    result = job.json(f"{OUT}_job/result.json")
    assert result["exit_code"] == 0 and result["uploaded_files"] == 2 and result["failed_uploads"] == []


def test_a_failing_script_sets_the_exit_code_and_its_outputs_are_kept(
    job: Buckets, capsys: pytest.CaptureFixture[str]
) -> None:
    job.put("jobs/failing.sh", FAILING.encode())
    assert main(["run-script", "--script-key", "jobs/failing.sh"]) == 3
    assert "[failing.sh] about to fail" in capsys.readouterr().out
    assert job.get(f"{OUT}partial.txt") == b"partial\n"
    assert job.json(f"{OUT}_job/result.json")["exit_code"] == 3


def test_configuration_errors_exit_2_and_say_what_to_set(
    job: Buckets, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["run-script"]) == 2
    assert "set SCRIPT_KEY (or --script-key)" in capsys.readouterr().err
    assert main(["run-script", "--script-key", "jobs/nothing.py"]) == 2
    assert f"SCRIPT_KEY 'jobs/nothing.py' does not exist in s3://{INPUT_BUCKET}" in capsys.readouterr().err
    assert main(["run-script", "--script-key", "jobs/notes.txt"]) == 2
    assert "must end in .py or .sh" in capsys.readouterr().err
    monkeypatch.delenv("ML_OUTPUT_BUCKET")
    assert main(["run-script", "--script-key", "jobs/a.py"]) == 2
    assert "set ML_OUTPUT_BUCKET (or --output-bucket)" in capsys.readouterr().err
    assert job.keys(OUT) == []


def test_sigterm_is_forwarded_to_the_script_and_outputs_still_uploaded(
    buckets: Buckets, job_env: JobEnv, tmp_path: Path
) -> None:
    buckets.put("jobs/term.py", TRAPS_SIGTERM.encode())
    env = job_env(SCRIPT_KEY="jobs/term.py", OUTPUT_PREFIX=OUT, OUTPUT_DIR=str(tmp_path / "output"))
    proc = start_job("run-script", env, tmp_path)
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:  # wait until the script runs and has its handler
        seen.append(line)
        if "[term.py] ready" in line:
            break
    proc.send_signal(signal.SIGTERM)  # what Batch sends on timeout, cancel or spot reclaim
    rest, _ = proc.communicate(timeout=PROCESS_TIMEOUT)
    assert proc.returncode == 7, "".join(seen) + rest
    assert "[term.py] cleaning up" in rest
    assert buckets.get(f"{OUT}terminated.txt") == f"signal {int(signal.SIGTERM)}".encode()


def test_cpu_example_through_the_runner(job: Buckets, monkeypatch: pytest.MonkeyPatch) -> None:
    images = {
        "images/a.jpg": face_images()["a_original.jpg"],
        "images/b.png": face_images()["f_left_half.png"],
    }
    for key, data in (images | {"images/bad.jpg": b"not an image", "other/c.jpg": b"x"}).items():
        job.put(key, data)
    job.put("jobs/cpu_processing.py", (REPO / "examples" / "cpu_processing.py").read_bytes())
    monkeypatch.setenv("INPUT_PREFIX", "images/")
    assert main(["run-script", "--script-key", "jobs/cpu_processing.py"]) == 0

    rows = list(csv.DictReader(io.StringIO(job.get(f"{OUT}image_stats.csv").decode())))
    assert [(r["key"], r["format"], r["width"], r["height"]) for r in rows] == [
        ("images/a.jpg", "JPEG", "400", "277"),
        ("images/b.png", "PNG", "200", "277"),
    ]
    assert all(0 < float(r["brightness"]) < 255 and float(r["sharpness"]) > 0 for r in rows)
    summary = job.json(f"{OUT}summary.json")
    assert (
        summary["images"] == 3 and summary["measured"] == 2 and list(summary["failed"]) == ["images/bad.jpg"]
    )


@pytest.mark.slow
def test_gpu_example_through_the_runner_on_cpu(job: Buckets, monkeypatch: pytest.MonkeyPatch) -> None:
    images = {
        "images/group.jpg": face_images()["a_original.jpg"],
        "images/blank.jpg": blank_images()["h_blank1.jpg"],
        "images/broken.jpg": corrupt_image()["i_corrupt.jpg"],
    }
    for key, data in images.items():
        job.put(key, data)
    job.put("jobs/gpu_processing.py", (REPO / "examples" / "gpu_processing.py").read_bytes())
    for name, value in {
        "MODEL_ROOT": str(MODEL_ROOT),
        "MODEL_PACK": MODEL_PACK,
        "EXECUTION_PROVIDER": "auto",  # CPU here: no CUDA provider in this onnxruntime
        "INPUT_PREFIX": "images/",
    }.items():
        monkeypatch.setenv(name, value)
    assert main(["run-script", "--script-key", "jobs/gpu_processing.py"]) == 0

    rows = list(csv.DictReader(io.StringIO(job.get(f"{OUT}faces.csv").decode())))
    assert {r["image_key"] for r in rows} == {"images/group.jpg"} and len(rows) == 6
    arrays = np.load(io.BytesIO(job.get(f"{OUT}embeddings.npz")))
    assert arrays["embeddings"].shape[0] == 6 and arrays["embeddings"].dtype == np.float32
    assert np.allclose(np.linalg.norm(arrays["embeddings"], axis=1), 1.0, atol=1e-4)
    assert list(arrays["ids"]) == [f"images/group.jpg#{i}" for i in range(6)]
    summary = job.json(f"{OUT}summary.json")
    assert (
        summary["images"] == 3 and summary["faces"] == 6 and list(summary["failed"]) == ["images/broken.jpg"]
    )
    assert summary["providers"]["recognition"] == ["CPUExecutionProvider"]
    assert json.loads(job.get(f"{OUT}_job/result.json"))["uploaded_files"] == 3
