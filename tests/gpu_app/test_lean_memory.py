"""Memory the process keeps after serving (issue 18 item 3): allocator settings, checked directly."""

from __future__ import annotations

import sys

import pytest

from gpu_app.engine.insightface_engine import InsightFaceEngine
from gpu_app.memory import cap_malloc_arenas


def test_model_sessions_do_not_keep_an_arena(engine: InsightFaceEngine) -> None:
    # onnxruntime's CPU arena keeps the largest activations ever allocated (a batch of 64 faces)
    # for the life of the process; without it they go back to malloc after each call.
    for session in (engine._detector.session, engine._recognizer.session):
        assert session.get_session_options().enable_cpu_mem_arena is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_malloc_arenas_can_be_capped() -> None:
    assert cap_malloc_arenas(2) is True
