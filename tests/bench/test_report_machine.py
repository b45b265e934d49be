"""The report's machine table names uncommitted paths whole (git porcelain lines start with a space)."""

from __future__ import annotations

import subprocess
import time
from typing import Any

import pytest

from bench import report


def test_uncommitted_paths_are_named_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    real_run = subprocess.run

    def fake_git(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        if command[:2] == ["git", "status"]:
            return subprocess.CompletedProcess(command, 0, " M local_stack/README.md\n?? bench/new.py\n", "")
        if command[:2] == ["git", "rev-parse"]:
            return subprocess.CompletedProcess(command, 0, "abc1234\n", "")
        return real_run(command, **kwargs)

    monkeypatch.setattr(report.subprocess, "run", fake_git)
    info = dict(report.machine_info("quick", time.monotonic(), (0.0, 0.0, 0.0)))
    assert info["git commit"] == "abc1234 + uncommitted: bench/new.py, local_stack/README.md"
