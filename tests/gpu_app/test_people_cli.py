"""`python -m gpu_app people ...` as a user runs it, over a folder indexed by `python -m gpu_app index`."""

from __future__ import annotations

import json
from pathlib import Path

from gpu_app.engine.insightface_engine import InsightFaceEngine
from gpu_app.imaging import decode_image
from tests.gpu_app.test_cli import run_cli
from tests.support.labelled_faces import labelled_images
from tests.support.live_app import app_env


def test_list_show_rename_hide_merge_recluster_delete(tmp_path: Path, engine: InsightFaceEngine) -> None:
    def detect(data: bytes) -> list[tuple[float, float, float, float]]:
        decoded = decode_image(data, max_pixels=40_000_000)
        result = engine.analyze_each([decoded.bgr])[0]
        assert not isinstance(result, Exception)
        return [face.scaled(*decoded.scale).bbox for face in result]

    folder = tmp_path / "photos"
    folder.mkdir()
    for i, image in enumerate(labelled_images(detect, variants=3)):
        if image.label in ("hanks", "t1-5"):
            (folder / f"{i:02d}-{image.label}.jpg").write_bytes(image.jpeg)
    env = app_env(tmp_path / "state")
    assert run_cli(env, "index", str(folder)).returncode == 0

    def people(*args: str) -> dict:
        done = run_cli(env, "people", *args)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    listed = people("list")
    assert listed["total"] == 2 and [p["face_count"] for p in listed["people"]] == [3, 3]
    first, second = (p["person_id"] for p in listed["people"])
    assert people("rename", first, "Tom")["name"] == "Tom"
    shown = people("show", first)
    assert shown["name"] == "Tom" and len(shown["faces"]) == 3
    assert people("hide", second)["hidden"] is True
    assert people("list")["total"] == 1 and people("list", "--hidden")["total"] == 2

    into_itself = run_cli(env, "people", "merge", first, first)
    assert into_itself.returncode == 2 and "into itself" in into_itself.stderr
    unknown = run_cli(env, "people", "show", "0" * 32)
    assert unknown.returncode == 2 and "no person" in unknown.stderr
    assert people("list", "--hidden")["total"] == 2  # nothing changed

    reclustered = people("recluster")
    assert (reclustered["faces"], reclustered["people"], reclustered["kept_names"]) == (6, 2, 1)
    merged = people("merge", first, second)
    assert merged["face_count"] == 6 and merged["name"] == "Tom"
    assert people("delete", first) == {"person_id": first, "unassigned_faces": 6}
    assert people("list", "--hidden")["total"] == 0
