"""`make package`: reproducible zips whose handlers import from the zip alone (plus the runtime's boto3)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ("dispatcher", "controller", "monitor", "idle_stopper")

PROBE = """
import importlib, json, sys
module = importlib.import_module(sys.argv[1])
print(json.dumps({
    "handler": callable(module.lambda_handler),
    "module_file": module.__file__,
    "heavy": sorted(
        {m.split(".")[0] for m in sys.modules}
        & {"requests", "httpx", "pydantic", "gpu_app", "aws_lambda_powertools"}
    ),
}))
"""


def test_two_builds_are_byte_identical_and_each_zip_imports_its_handler(tmp_path: Path) -> None:
    for out in ("a", "b"):
        subprocess.run(
            [sys.executable, "scripts/package_lambdas.py", "--arch", "x86_64", "--out", str(tmp_path / out)],
            cwd=ROOT,
            check=True,
        )

    for function in FUNCTIONS:
        first, second = tmp_path / "a" / f"{function}.zip", tmp_path / "b" / f"{function}.zip"
        assert first.read_bytes() == second.read_bytes(), function
        with zipfile.ZipFile(first) as archive:
            names = archive.namelist()
            assert names == sorted(names)
            assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
            assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
            # boto3 comes from the runtime, and nothing else is needed (no Powertools: issue 18 goal 4).
            assert not [n for n in names if not n.startswith(("lambdas/", "contract/"))]
            assert f"lambdas/{function}/handler.py" in names
            others = [f for f in FUNCTIONS if f != function]
            assert not [n for n in names if n.startswith(tuple(f"lambdas/{f}/" for f in others))]
            archive.extractall(tmp_path / "x" / function)

        # Extracted paths come first, as /var/task does in Lambda; boto3 comes from the venv (the runtime).
        root = tmp_path / "x" / function
        probe = subprocess.run(
            [sys.executable, "-c", PROBE, f"lambdas.{function}.handler"],
            cwd=tmp_path,
            env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=True,
        )
        report = json.loads(probe.stdout)
        assert report["handler"] is True
        assert Path(report["module_file"]).is_relative_to(root)
        assert report["heavy"] == []
