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
# Needed by one path at most: the manifest parser (only messages that name a manifest).
LAZY = ("contract.manifest",)


def loaded_after_import(handler: str) -> set[str]:
    code = f"import json, sys; import {handler}; print(json.dumps(sorted(sys.modules)))"
    env = {"PYTHONPATH": str(REPO), "AWS_DEFAULT_REGION": "us-east-1", "AWS_LAMBDA_FUNCTION_NAME": "t"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    return set(json.loads(done.stdout))


@pytest.mark.parametrize("handler", HANDLERS)
def test_handler_import_leaves_path_only_modules_unloaded(handler: str) -> None:
    loaded = loaded_after_import(handler)
    assert not loaded & set(LAZY), f"{handler} imports {sorted(loaded & set(LAZY))} at cold start"


@pytest.mark.parametrize("handler", HANDLERS)
def test_handler_import_loads_no_powertools(handler: str) -> None:
    # Its package __init__ imports its Logger, Metrics and Tracer whatever part is asked for (~8 ms
    # after boto3), its idempotency utility ~11 ms more: the handlers use neither (lambdas/common/
    # log.py, lambdas/common/idempotency.py).
    powertools = sorted(m for m in loaded_after_import(handler) if m.startswith("aws_lambda_powertools"))
    assert not powertools, f"{handler} imports {powertools[:5]} at cold start"


@pytest.mark.parametrize("handler", HANDLERS)
def test_handler_imports_boto3_before_its_own_modules(handler: str) -> None:
    # boto3 imported from deep in the handler's import chain measured 3-5% slower (bench section 6).
    code = (
        "import json, sys\n"
        "seen = []\n"
        "class Recorder:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        seen.append(name)\n"
        f"sys.meta_path.insert(0, Recorder())\nimport {handler}\nprint(json.dumps(seen))\n"
    )
    env = {"PYTHONPATH": str(REPO), "AWS_DEFAULT_REGION": "us-east-1", "AWS_LAMBDA_FUNCTION_NAME": "t"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    order = json.loads(done.stdout)
    function = handler.rsplit(".", 1)[0]
    # The handler's first import from the package is the boto3 module; boto3 loads before the next one.
    own = [name for name in order if name.startswith("lambdas.") and name not in (handler, function)]
    own.remove("lambdas.common")
    assert own[0] == "lambdas.common.aws", own[:3]
    assert order.index("boto3") < order.index(own[1])
