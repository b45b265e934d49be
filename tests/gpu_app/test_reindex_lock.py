"""`reindex --fresh` must not delete the embedded index under a running app (issue 12, item 6)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import requests

from tests.gpu_app.test_cli import run_cli
from tests.support.images import sample_bytes, variants
from tests.support.live_app import app_env, run_app


def indexed_faces(index_dir: Path) -> int:
    with sqlite3.connect(index_dir / "faces.sqlite3") as db:
        return int(db.execute("SELECT COUNT(*) FROM faces").fetchone()[0])


def test_reindex_fresh_refuses_while_the_app_runs_and_nothing_acknowledged_is_lost(tmp_path: Path) -> None:
    env = app_env(tmp_path / "state")
    with run_app(os.environ | env, tmp_path / "app.log") as app:
        first = requests.post(
            f"{app.url}/upload-images/", files=[("files", ("t1.jpg", sample_bytes()))], timeout=120
        )
        assert first.status_code == 200, first.text

        refused = run_cli(env, "reindex", "--fresh")
        assert refused.returncode == 2, refused.stderr
        assert "refusing --fresh" in refused.stderr and "the app is running" in refused.stderr

        # Uploads acknowledged after the refused attempt land in the same, live index.
        second = requests.post(
            f"{app.url}/upload-images/", files=[("files", ("flip.jpg", variants()["hflip"][0]))], timeout=120
        )
        assert second.status_code == 200, second.text
        # A plain reindex (upsert) may run beside the app.
        assert run_cli(env, "reindex").returncode == 0
    assert indexed_faces(tmp_path / "state" / "index") == 12

    rebuilt = run_cli(env, "reindex", "--fresh")  # the app is gone: the lock is free
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "reindexed 12 faces of 2 images" in rebuilt.stdout
    assert indexed_faces(tmp_path / "state" / "index") == 12
