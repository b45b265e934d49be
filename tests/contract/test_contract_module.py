"""The contract package on its own: standard library only, and its rules as documented."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from contract.health import AppHealth
from contract.limits import MAX_FILES_PER_REQUEST, files_per_request
from contract.manifest import ManifestEntry, ManifestError, parse_manifest
from contract.media import is_image_key, is_manifest_key, is_video_key
from contract.names import is_collection_name

REPOSITORY = Path(__file__).resolve().parents[2]


def test_importing_every_module_loads_nothing_outside_the_standard_library() -> None:
    code = (
        "import sys, pkgutil, importlib\n"
        "before = set(sys.modules)\n"
        "import contract\n"
        "for m in pkgutil.iter_modules(contract.__path__): importlib.import_module('contract.' + m.name)\n"
        "roots = {n.split('.')[0] for n in set(sys.modules) - before}\n"
        "print(json.dumps(sorted(roots - set(sys.stdlib_module_names) - {'contract'})))"
    )
    # -S: no site packages at all, so only the standard library and the repository can be imported.
    run = subprocess.run(
        [sys.executable, "-S", "-c", "import json\n" + code],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPOSITORY,
    )
    assert json.loads(run.stdout) == []


def test_a_manifest_key_listed_twice_is_one_entry_and_its_first_line_wins() -> None:
    lines = ["a.jpg", "", '{"key": "b.jpg", "person": "x"}', '{"key": "a.jpg", "person": "y"}', "  b.jpg  "]
    assert parse_manifest(lines) == [ManifestEntry("a.jpg"), ManifestEntry("b.jpg", {"person": "x"})]
    assert [entry.line for entry in parse_manifest(lines)] == [1, 3]


@pytest.mark.parametrize(
    "line", ["{not json", '{"key": ""}', '{"key": 3}', '{"other": "a"}', '{"key": ' + "[" * 100_000]
)
def test_a_bad_line_is_refused_with_its_number(line: str) -> None:
    with pytest.raises(ManifestError, match=r"m\.jsonl line 2 is neither a plain key"):
        parse_manifest(["ok.jpg", line], "m.jsonl")


def test_entries_write_back_as_manifest_lines() -> None:
    entry = ManifestEntry("a.jpg", {"person": "x"})
    assert parse_manifest([entry.to_json()]) == [entry]


def test_suffixes_in_any_case() -> None:
    assert is_image_key("a/B.JPG") and not is_image_key("a/b.jpg.txt") and not is_image_key("jpg")
    assert is_video_key("clip.MoV") and not is_video_key("clip.jpg")
    assert is_manifest_key("x/list.JSONL")
    assert not is_image_key("folder.jpg/")


@pytest.mark.parametrize(
    ("name", "valid"), [("a.b_c-D", True), ("x" * 64, True), ("x" * 65, False), ("a\n", False)]
)
def test_collection_rule(name: str, valid: bool) -> None:
    assert is_collection_name(name) is valid


def test_the_controller_follows_the_published_limit_else_the_apps_default() -> None:
    assert files_per_request(7) == 7
    assert files_per_request(None) == MAX_FILES_PER_REQUEST
    body = {"status": "ok", "ready": True, "idle_seconds": 1, "jobs_in_progress": 0}
    assert AppHealth.parse(body).files_per_request == MAX_FILES_PER_REQUEST
    assert AppHealth.parse(body | {"limits": {"max_files_per_request": 3}}).files_per_request == 3


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"status": "ok", "ready": 1, "idle_seconds": 1, "jobs_in_progress": 0},
        {"status": "ok", "ready": True, "idle_seconds": True, "jobs_in_progress": 0},
        {"status": "ok", "ready": True, "idle_seconds": 1, "jobs_in_progress": 0.5},
        {
            "status": "ok",
            "ready": True,
            "idle_seconds": 1,
            "jobs_in_progress": 0,
            "limits": {"max_files_per_request": 0},
        },
    ],
)
def test_a_malformed_health_body_is_refused(body: object) -> None:
    with pytest.raises(ValueError, match="health"):
        AppHealth.parse(body)
