"""Child processes and background loops of the local stack. A child runs in its own process group,
its output is prefixed on the console, and it is stopped with SIGTERM, then SIGKILL, together with
anything it started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Final

from local_stack.local_aws import RUN_MARKER

LineSink = Callable[[str], None]
_PROC: Final = Path("/proc")


class Console:
    """Prefixed lines from every component, one writer at a time, so lines never interleave."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream or sys.stdout
        self._lock = threading.Lock()

    def line(self, label: str, text: str) -> None:
        # A closed console (a pipe whose reader quit) must not stop the pumps draining the children.
        with self._lock, contextlib.suppress(OSError, ValueError):
            self._stream.write(f"{label:<14}| {text}\n" if label else f"{text}\n")
            self._stream.flush()

    def sink(self, label: str) -> LineSink:
        return lambda text: self.line(label, text)


def _descendants(root: int) -> list[int]:
    """Every process below `root` (Linux /proc; elsewhere only the process group is known)."""
    if not _PROC.is_dir():
        return []
    children: dict[int, list[int]] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The command name may hold spaces and parentheses: the fields after the last ')' are fixed.
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _signal_all(pids: Sequence[int], groups: Sequence[int], sig: signal.Signals) -> None:
    for group in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, sig)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def marked_processes(run_id: str) -> list[int]:
    """Processes whose environment carries this run's marker (Linux /proc; [] elsewhere)."""
    if not _PROC.is_dir():
        return []
    needle = f"{RUN_MARKER}={run_id}".encode()
    found = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


class ManagedProcess:
    """A child in its own session (Ctrl-C in the terminal reaches only the stack, which stops it)."""

    def __init__(
        self,
        label: str,
        command: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        sink: LineSink,
        pass_fds: Sequence[int] = (),
        stdin: int | None = subprocess.DEVNULL,
    ) -> None:
        self.label = label
        self.popen = subprocess.Popen(
            list(command),
            env=dict(env),
            cwd=cwd,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=tuple(pass_fds),
            start_new_session=True,
            text=True,
            errors="replace",
            bufsize=1,
        )
        self.pid = self.popen.pid
        self._pump = threading.Thread(target=self._forward, args=(sink,), name=f"out-{label}", daemon=True)
        self._pump.start()

    def _forward(self, sink: LineSink) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            sink(line.rstrip("\n"))

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit code, or None when it is still running after `timeout` seconds."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace: float = 10.0) -> int:
        """SIGTERM to its group and every descendant (some start their own group), SIGKILL after `grace`."""
        tree = _descendants(self.pid)
        groups = {self.pid}
        for pid in tree:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                groups.add(os.getpgid(pid))
        groups.discard(os.getpgrp())  # never the stack's own group
        if self.alive() or tree:
            _signal_all(tree, sorted(groups), signal.SIGTERM)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and (self.alive() or any(_exists(pid) for pid in tree)):
                time.sleep(0.1)
            _signal_all([pid for pid in tree if _exists(pid)], sorted(groups), signal.SIGKILL)
        code = self.popen.wait()
        self._pump.join(timeout=2)
        return code


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); its parent reaps it, so it no longer counts.
    try:
        return (_PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class Loop:
    """A background thread calling `step()` every `interval` seconds (or at once after `wake()`) until
    stopped. A failing step is reported and the loop goes on: one bad poll (moto busy, a malformed
    message) must not stop a service.
    """

    def __init__(self, name: str, interval: float, step: Callable[[], None], log: LineSink) -> None:
        self.name = name
        self.interval = interval
        self._step = step
        self._log = log
        self.stopping = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                self._step()
            except Exception as exc:
                if not self.stopping.is_set():
                    self._log(f"{self.name}: {type(exc).__name__}: {exc}")
            self._wake.wait(self.interval)
            self._wake.clear()

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        self.stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
