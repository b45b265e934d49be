"""Memory the process keeps after serving (issue 18 item 3): allocator settings, checked directly."""

from __future__ import annotations

import sys

import pytest

from gpu_app.memory import cap_malloc_arenas


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_malloc_arenas_can_be_capped() -> None:
    assert cap_malloc_arenas(2) is True
