"""Memory the process keeps after serving (issue 18 item 3): glibc heaps, counted by glibc itself."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Threads allocate at once (so glibc wants more heaps), then glibc's malloc_info lists its heaps.
HEAPS_AFTER_THREADS = """
import ctypes, re, sys, tempfile, threading
if sys.argv[1] == "capped":
    from gpu_app.memory import cap_malloc_arenas
    assert cap_malloc_arenas(2)
start = threading.Barrier(8)
def work():
    start.wait()
    keep = [bytearray(2000) for _ in range(20000)]
    del keep
threads = [threading.Thread(target=work) for _ in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
with tempfile.NamedTemporaryFile(suffix=".xml") as out:
    handle = libc.fopen(out.name.encode(), b"w")
    libc.malloc_info(0, handle)
    libc.fclose(handle)
    print(len(re.findall(r'<heap nr="', open(out.name).read())))
"""


def heaps(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", HEAPS_AFTER_THREADS, mode],
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc_info")
def test_capped_process_keeps_at_most_two_heaps() -> None:
    # Each heap keeps what was freed in it; dozens of app threads with a heap each held hundreds of MB.
    assert heaps("capped") <= 2
    assert heaps("default") > 2  # the default does make more: the check above can fail
