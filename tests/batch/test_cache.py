"""`python -m gpu_app.batch cleanup-cache`: empties the model cache, reports the space, refuses `/` and ~."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpu_app.batch.__main__ import main
from gpu_app.batch.cache import human_bytes


def fill(cache: Path) -> int:
    (cache / "models" / "buffalo_l").mkdir(parents=True)
    (cache / "models" / "buffalo_l" / "det.onnx").write_bytes(b"\0" * 3000)
    (cache / "models" / "buffalo_l" / "rec.onnx").write_bytes(b"\0" * 2000)
    (cache / "models" / "buffalo_l.zip").write_bytes(b"\0" * 1500)
    (cache / ".lock").write_bytes(b"1")
    outside = cache.parent / "keep.bin"
    outside.write_bytes(b"\0" * 10_000)
    (cache / "link").symlink_to(outside)  # removed as a link; its 10 kB target is not the cache's
    return 3000 + 2000 + 1500 + 1 + len(str(outside))


def test_dry_run_reports_and_keeps_then_cleanup_empties_the_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = tmp_path / "cache"
    expected = fill(cache)

    assert main(["cleanup-cache", "--cache-dir", str(cache), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"would free {human_bytes(expected)} ({expected} bytes, 5 files in 3 entries)" in out
    assert (cache / "models" / "buffalo_l" / "det.onnx").exists()

    assert main(["cleanup-cache", "--cache-dir", str(cache)]) == 0
    assert f"freed {human_bytes(expected)} ({expected} bytes" in capsys.readouterr().out
    assert cache.is_dir() and list(cache.iterdir()) == []  # the folder (maybe a mount) stays
    assert (tmp_path / "keep.bin").stat().st_size == 10_000


def test_defaults_to_model_cache_dir_then_model_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root, cache = tmp_path / "root", tmp_path / "cache"
    for folder in (root, cache):
        folder.mkdir()
        (folder / "f").write_bytes(b"12345")
    monkeypatch.setenv("MODEL_ROOT", str(root))
    monkeypatch.setenv("MODEL_CACHE_DIR", str(cache))
    assert main(["cleanup-cache"]) == 0
    assert not (cache / "f").exists() and (root / "f").exists()
    monkeypatch.delenv("MODEL_CACHE_DIR")
    assert main(["cleanup-cache"]) == 0
    assert not (root / "f").exists()
    assert main(["cleanup-cache", "--cache-dir", str(tmp_path / "missing")]) == 0
    assert "freed 0 B (0 bytes, 0 files in 0 entries)" in capsys.readouterr().out


@pytest.mark.parametrize("target", ["/", "~", "HOME_PARENT", "/tmp/../"])
def test_refuses_root_and_home(target: str, capsys: pytest.CaptureFixture[str]) -> None:
    if target == "HOME_PARENT":
        target = str(Path.home().parent)
    assert main(["cleanup-cache", "--cache-dir", target, "--dry-run"]) == 2
    assert "refusing to empty" in capsys.readouterr().err


def test_human_bytes() -> None:
    assert [human_bytes(n) for n in (0, 1023, 1024, 5 * 1024**3 // 2, 3 * 1024**5)] == [
        "0 B",
        "1023 B",
        "1.0 KiB",
        "2.5 GiB",
        "3072.0 TiB",
    ]
