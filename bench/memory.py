"""Item 7: resident memory of another process, from /proc/<pid>/status (Linux).

VmHWM is the peak resident set since the process started, or since the peak was last reset by
writing "5" to /proc/<pid>/clear_refs. Resetting it per load level gives the peak of that level
alone; where the reset is not allowed, a sampler thread's maximum VmRSS stands in.
"""

from __future__ import annotations

import threading
from pathlib import Path


def status(pid: int) -> dict[str, int]:
    """The kB fields of /proc/<pid>/status (VmRSS, VmHWM, VmSize, ...) and Threads."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit() and (name.startswith("Vm") or name == "Threads"):
            values[name] = int(parts[0])
    return values


def rss_mb(pid: int) -> float:
    return status(pid)["VmRSS"] / 1024


def peak_mb(pid: int) -> float:
    return status(pid)["VmHWM"] / 1024


def reset_peak(pid: int) -> bool:
    """Restart VmHWM from the current RSS; False when the kernel does not let us."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class RssSampler:
    """Maximum VmRSS seen every `interval` seconds while running (a fallback for reset_peak)."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.maximum_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.maximum_kb = max(self.maximum_kb, status(self.pid)["VmRSS"])
            except (OSError, KeyError):
                return  # the process is gone
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    @property
    def maximum_mb(self) -> float:
        return self.maximum_kb / 1024
