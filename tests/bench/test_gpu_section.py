"""The GPU section's arithmetic and its no-GPU report (the CUDA run itself needs a GPU)."""

from __future__ import annotations

import math

import pytest

from bench import gpu
from bench.core import HEADINGS, Options


def test_cost_per_1000_images_from_throughput() -> None:
    minutes, dollars = gpu.cost_per_1000(images_per_second=2.0, usd_per_hour=0.158)
    assert minutes == pytest.approx(1000 / 2.0 / 60)  # 500 s
    assert dollars == pytest.approx(0.158 * 500 / 3600)
    assert gpu.cost_per_1000(0.0, 0.158) == (math.inf, math.inf)


def test_target_throughput_is_what_the_design_document_asks() -> None:
    # 1,000 images in under 30 minutes: at least 0.56 images/s; then far below $0.01 per image.
    minutes, dollars = gpu.cost_per_1000(1000 / (30 * 60), gpu.SPOT_USD_PER_HOUR["g4dn.xlarge"])
    assert minutes == pytest.approx(gpu.TARGET_MINUTES_PER_1000)
    assert dollars / 1000 < gpu.TARGET_USD_PER_IMAGE


def test_nvidia_smi_output_is_parsed_and_garbage_skipped() -> None:
    assert gpu.parse_utilisation("87\n 12 \n[N/A]\n\n") == [87.0, 12.0]


def test_without_cuda_the_section_says_not_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    [result] = gpu.run(Options(quick=True))
    assert result.heading == HEADINGS["gpu"] and result.error is None
    assert result.numbers == {"gpu_measured": 0.0}
    assert any("Not measured on this machine" in note for note in result.notes)
    assert not result.ratios  # no figure is invented
