"""Cold start: a handler's import pulls in only what every invocation needs (issue 18 item 4).

Modules that only some paths use are imported inside those paths; this checks which modules a
fresh interpreter holds after importing each handler, never how long it took.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HANDLERS = (
    "lambdas.dispatcher.handler",
    "lambdas.controller.handler",
    "lambdas.monitor.handler",
    "lambdas.idle_stopper.handler",
)
# Costly at import and needed by one path at most: the SNS record parser (only SNS deliveries).
LAZY = ("aws_lambda_powertools.utilities.data_classes",)


@pytest.mark.parametrize("handler", HANDLERS)
def test_handler_import_leaves_path_only_modules_unloaded(handler: str) -> None:
    code = f"import json, sys; import {handler}; print(json.dumps(sorted(sys.modules)))"
    env = {"PYTHONPATH": str(REPO), "AWS_DEFAULT_REGION": "us-east-1", "AWS_LAMBDA_FUNCTION_NAME": "t"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    loaded = set(json.loads(done.stdout))
    assert not loaded & set(LAZY), f"{handler} imports {sorted(loaded & set(LAZY))} at cold start"
