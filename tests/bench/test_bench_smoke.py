"""`python -m bench --quick` runs end to end and writes a complete report.

Benchmarks are not tests: nothing here looks at a timing. It only checks that every measurement
ran (no section FAILED), that the report has every section and at least one same-run ratio.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.core import HEADINGS, REPO

RATIO_LINE = re.compile(r"^- \*\*[^*]+\*\*: \d+\.\d+\u00d7 \(spread ", re.MULTILINE)


@pytest.mark.slow
def test_quick_bench_runs_and_writes_every_section(tmp_path: Path) -> None:
    report = tmp_path / "B.md"
    command = [sys.executable, "-m", "bench", "--quick", "--output", str(report)]
    done = subprocess.run(
        [*command, "--json", str(tmp_path / "results.json")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=540,  # every worker has its own limit; this only guards against a hung orchestrator
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    text = report.read_text()
    for heading in ("Machine", "Summary", *HEADINGS.values(), "Methodology"):
        assert f"\n## {heading}\n" in text, f"missing section {heading!r}"
    assert "FAILED" not in text
    assert "Not run in this invocation" not in text
    assert RATIO_LINE.search(text), "no ratio line in the report"
    assert "pipeline vs naive" in text and "overhead factor" in text
    assert "ratio" in done.stdout and "median" in done.stdout  # the table printed on stdout
