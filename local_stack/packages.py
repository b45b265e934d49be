"""The Lambda zips Terraform uploads to moto: the functions' code only, built with make package's
own zip writer (scripts/package_lambdas.py: same entries, sorted, fixed times).

moto stores a function's zip and never runs it (the local host runs the handlers from the checkout).
The functions need nothing beyond the standard library and the runtime's boto3 today, so these are
the zips `make package` builds; should requirements/lambda.txt gain a dependency, it is left out here
(building it needs pip to fetch wheels for another platform, and a start would wait for it).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from local_stack.local_aws import REPO

PACKAGER = REPO / "scripts" / "package_lambdas.py"


def _packager() -> ModuleType:
    spec = importlib.util.spec_from_file_location("package_lambdas", PACKAGER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_code_zips(out: Path) -> Path:
    """`out/<function>.zip` for every function of make package; returns `out`."""
    packager = _packager()
    out.mkdir(parents=True, exist_ok=True)
    for function in packager.FUNCTIONS:
        packager.write_zip(packager.source_files(function), out / f"{function}.zip")
    return out
