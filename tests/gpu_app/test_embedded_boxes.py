"""The embedded index's stored boxes read back as the JSON they are written as, without json.loads."""

from __future__ import annotations

import json
import math

import pytest

from gpu_app.index.embedded import _bbox_json, _bbox_of


@pytest.mark.parametrize(
    "bbox",
    [(0.0, 0.0, 1.0, 1.0), (12.345678901234567, -3.5e-07, 1e16, 640.0), (math.nan, math.inf, -math.inf, 2.0)],
)
def test_stored_boxes_read_back_as_json_reads_them(bbox: tuple[float, float, float, float]) -> None:
    text = _bbox_json(bbox)
    assert [repr(v) for v in _bbox_of(text)] == [repr(float(v)) for v in json.loads(text)]
    assert [repr(v) for v in _bbox_of(text)] == [repr(v) for v in bbox]
