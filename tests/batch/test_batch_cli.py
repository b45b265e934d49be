"""`python -m gpu_app.batch` arguments: a flag given wins, a flag not given takes its setting from the
app's one settings object, a bad variable is a configuration error naming it."""

from __future__ import annotations

import pytest

from gpu_app.batch import EXIT_CONFIG
from gpu_app.batch.__main__ import build_parser, main, with_settings
from gpu_app.config import Settings


def resolved(argv: list[str]) -> dict[str, object]:
    return vars(with_settings(build_parser().parse_args(argv), Settings()))


def test_a_flag_given_wins_and_a_flag_not_given_takes_its_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCH_SIZE", "8")
    monkeypatch.setenv("AWS_BATCH_JOB_ARRAY_INDEX", "3")
    monkeypatch.setenv("MODEL_CACHE_DIR", "/models/cache")
    assert resolved(["embed"])["batch_size"] == 8
    assert resolved(["embed", "--batch-size", "4"])["batch_size"] == 4
    assert resolved(["embed"])["array_index"] == 3
    assert resolved(["embed", "--array-index", "0"])["array_index"] == 0  # 0 given is not "not given"
    assert str(resolved(["cleanup-cache"])["cache_dir"]) == "/models/cache"


def test_materialize_reads_its_own_array_size_not_the_childs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARRAY_SIZE", "5")
    monkeypatch.setenv("AWS_BATCH_JOB_ARRAY_SIZE", "7")
    assert resolved(["materialize"])["array_size"] == 5
    assert resolved(["embed"])["array_size"] == 7


def test_a_bad_variable_exits_2_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CHECKPOINT_EVERY", "often")
    assert main(["embed"]) == EXIT_CONFIG
    assert "checkpoint_every" in capsys.readouterr().err.lower()


def test_an_empty_optional_variable_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """Job definitions may write IMAGE_COUNT="" or MANIFEST_KEY="": unset, not a bad number."""
    monkeypatch.setenv("IMAGE_COUNT", "")
    monkeypatch.setenv("MANIFEST_KEY", " ")
    arguments = resolved(["embed"])
    assert arguments["image_count"] is None and arguments["manifest_key"] is None


@pytest.mark.parametrize("command", ["embed", "video"])
def test_a_collection_the_app_would_refuse_is_a_configuration_error(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Checked before any bucket is read: the job never indexes faces the API could not address."""
    argv = [command, "--input-bucket", "in", "--output-bucket", "out", "--output-prefix", "jobs/x/"]
    argv += ["--input-prefix", "p/"] if command == "embed" else ["--video-key", "v.mp4"]
    assert main([*argv, "--collection", "hall 2"]) == EXIT_CONFIG
    assert "not a collection name" in capsys.readouterr().err
