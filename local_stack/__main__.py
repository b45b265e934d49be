"""`python -m local_stack`: the whole system on 127.0.0.1 until Ctrl-C (`make run`)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from local_stack.local_aws import NotLocalError
from local_stack.processes import Console
from local_stack.stack import LocalStack, Options, StartError
from local_stack.state import StateLockedError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m local_stack", description=__doc__)
    parser.add_argument("--state-dir", type=Path, default=Path(".local-stack"), help="default: .local-stack")
    parser.add_argument("--moto-port", type=int, default=5000, help="local AWS (moto); default 5000")
    parser.add_argument("--lambda-port", type=int, default=5001, help="Lambda Invoke API; default 5001")
    parser.add_argument("--app-port", type=int, default=8000, help="the face API; default 8000")
    parser.add_argument("--no-app", action="store_true", help="do not run the app for the GPU instance")
    parser.add_argument(
        "--idle-check-seconds",
        type=float,
        default=float(os.environ.get("IDLE_CHECK_SECONDS", "60")),
        help="idle stopper schedule (env IDLE_CHECK_SECONDS; default 60)",
    )
    parser.add_argument(
        "--auto-shutdown-idle-time",
        type=int,
        default=int(os.environ.get("AUTO_SHUTDOWN_IDLE_TIME", "3600")),
        help="idle seconds before the instance is stopped (env AUTO_SHUTDOWN_IDLE_TIME; default 3600)",
    )
    parser.add_argument("--batch-parallelism", type=int, default=2, help="Batch jobs run at once; default 2")
    parser.add_argument(
        "--var",
        action="append",
        default=[],
        type=terraform_variable,
        metavar="NAME=VALUE",
        help="a Terraform variable of the apply, as terraform -var (VALUE: JSON, else a string); repeatable",
    )
    return parser


def terraform_variable(text: str) -> tuple[str, Any]:
    name, separator, value = text.partition("=")
    if not separator or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE")
    try:
        return name.strip(), json.loads(value)
    except ValueError:
        return name.strip(), value


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    options = Options(
        state_dir=args.state_dir,
        moto_port=args.moto_port,
        lambda_port=args.lambda_port,
        app_port=args.app_port,
        app=not args.no_app,
        idle_check_seconds=args.idle_check_seconds,
        auto_shutdown_idle_time=args.auto_shutdown_idle_time,
        batch_parallelism=args.batch_parallelism,
        terraform_variables=dict(args.var),
    )
    console = Console()
    stop = threading.Event()

    def request_stop(signum: int, _: FrameType | None) -> None:
        if stop.is_set():
            return
        stop.set()
        console.line("stack", f"{signal.Signals(signum).name}: stopping (this takes a few seconds)")

    # Ctrl-C (SIGINT) and SIGTERM only ask; the main thread stops everything in order.
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    stack = LocalStack(options, console)
    try:
        stack.start()
    except (StartError, StateLockedError, NotLocalError) as exc:
        console.line("stack", f"cannot start: {exc}")
        stack.stop()
        return 1
    except BaseException:
        stack.stop()
        raise
    while not stop.wait(1.0):
        pass
    stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
