"""`python -m local_stack.watchdog <stack pid> <run id>`: ends the run's processes if the stack dies.

The stack stops its children in order when it is asked to (Ctrl-C, SIGTERM). Killed with SIGKILL (or
crashed) it cannot, and moto, the app and the containers would keep running and holding their ports,
so the next `make run` could not start. This process is the stack's first child: it waits for its
parent to go away (its parent pid changes), then kills every process carrying the run's marker
(grandchildren included: the marker is inherited), and exits. At a clean stop the stack ends it first.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from typing import Final

from local_stack.processes import marked_processes

POLL_SECONDS: Final = 0.2
SWEEPS: Final = 5  # processes starting while the first sweep runs are caught by the next ones


def sweep(run_id: str) -> int:
    killed = 0
    for _ in range(SWEEPS):
        pids = marked_processes(run_id)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
        if not pids:
            break
        time.sleep(POLL_SECONDS)
    return killed


def main(argv: list[str]) -> int:
    parent, run_id = int(argv[1]), argv[2]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # the stack's clean stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the stack, which then stops this
    while os.getppid() == parent:
        time.sleep(POLL_SECONDS)
    killed = sweep(run_id)
    print(f"the local stack ({parent}) is gone: killed {killed} process(es) of its run", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
