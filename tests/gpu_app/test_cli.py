"""`python -m gpu_app` as a user runs it: serve over real HTTP, index a folder, search an image."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import requests

from tests.support.images import blank_jpeg, sample_bytes, variants
from tests.support.live_app import REPO, app_env, live_app


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gpu_app", *args],
        cwd=REPO,
        env=os.environ | env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_index_folder_then_search_from_the_command_line(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    (folder / "t1.jpg").write_bytes(sample_bytes())
    (folder / "sub" / "blank.jpg").write_bytes(blank_jpeg())
    (folder / "sub" / "broken.jpg").write_bytes(b"not an image")
    (folder / "notes.txt").write_text("ignored: not an image suffix")
    env = app_env(tmp_path / "state")

    indexed = run_cli(env, "index", str(folder))
    assert indexed.returncode == 1  # one file failed: the exit code says so
    assert "indexed 2 of 3 images, 6 faces" in indexed.stdout
    assert "broken.jpg: not a recognised image" in indexed.stderr
    assert "indexing" in indexed.stderr  # the progress bar

    query = tmp_path / "query.jpg"
    query.write_bytes(variants()["hflip"][0])
    found = run_cli(env, "search", str(query), "-k", "3")
    assert found.returncode == 0, found.stderr
    results = json.loads(found.stdout)
    assert len(results) == 6
    assert all(len(r["matches"]) == 1 and r["matches"][0]["similarity"] >= 0.6 for r in results)

    missing = run_cli(env, "index", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "is not a folder" in missing.stderr


def test_serve_answers_real_http_with_an_api_key(tmp_path: Path) -> None:
    env = app_env(tmp_path, API_KEY="k3y")
    with live_app(env) as url:
        health = requests.get(f"{url}/health", timeout=10).json()
        assert health["ready"] is True and health["model"]["pack"] == "offline_sc"
        files = [("files", ("a.jpg", sample_bytes())), ("files", ("b.jpg", blank_jpeg()))]
        denied = requests.post(f"{url}/upload-images/", files=files, timeout=60)
        assert denied.status_code == 401
        response = requests.post(
            f"{url}/upload-images/", files=files, headers={"X-API-Key": "k3y"}, timeout=60
        )
        assert response.status_code == 200
        assert [len(r["faces"]) for r in response.json()["results"]] == [6, 0]
        search = requests.post(
            f"{url}/search",
            files={"file": ("q.jpg", sample_bytes())},
            headers={"X-API-Key": "k3y"},
            timeout=60,
        )
        assert all(q["matches"][0]["similarity"] > 0.99 for q in search.json()["queries"])
