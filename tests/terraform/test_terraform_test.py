"""`terraform test` on terraform/: whole-stack and per-module plans with the real AWS provider schema.

terraform/tests/*.tftest.hcl plan the stack with `mock_provider "aws"` (no AWS calls, no
credentials): defaults, every setting of terraform.tfvars.example, NAT, On-Demand with S3 events and
e-mails, the CPU image, Spot, the edges of every variable validation, and per-module assertions on
queue routing and IAM. The real provider comes from a filesystem mirror (TF_PROVIDER_MIRROR, default
/opt/tf-plugins); without it, or without a terraform binary >= 1.11, these tests say so and skip.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.terraform import tfconfig as tf

MIRROR = Path(os.environ.get("TF_PROVIDER_MIRROR", "/opt/tf-plugins"))
TESTS_DIR = tf.TERRAFORM_DIR / "tests"
RUN_BLOCK = re.compile(r'^run "([^"]+)"', re.MULTILINE)
EXAMPLE_RUN = ("stack.tftest.hcl", "every_setting_of_the_example")
# Settings the example run must set differently, and why.
EXAMPLE_EXCEPTIONS = {
    # The example's null means build/lambda, which only `make package` fills.
    "lambda_build_dir": "tests/fixtures/lambda",
}
MINIMUM_TERRAFORM = (1, 11)


def declared_runs() -> list[tuple[str, str]]:
    """(file, run) of every run block under terraform/tests, in file order."""
    return [
        (path.name, name)
        for path in sorted(TESTS_DIR.glob("*.tftest.hcl"))
        for name in RUN_BLOCK.findall(path.read_text())
    ]


@dataclass
class TerraformTestResults:
    returncode: int
    runs: dict[tuple[str, str], str] = field(default_factory=dict)
    diagnostics: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    other_output: list[str] = field(default_factory=list)


def parse_test_output(lines: list[str], returncode: int) -> TerraformTestResults:
    """The status and diagnostics of every run from `terraform test -json`."""
    results = TerraformTestResults(returncode=returncode)
    for line in lines:
        try:
            message = json.loads(line)
        except ValueError:
            results.other_output.append(line)
            continue
        where = (Path(message.get("@testfile", "")).name, message.get("@testrun", ""))
        if message.get("type") == "test_run" and message["test_run"].get("progress") == "complete":
            results.runs[where] = message["test_run"]["status"]
        elif message.get("type") == "diagnostic":
            diagnostic = message["diagnostic"]
            text = f"{diagnostic['severity']}: {diagnostic['summary']} {diagnostic.get('detail', '')}".strip()
            results.diagnostics.setdefault(where, []).append(text)
        elif message.get("type") == "test_summary":
            results.summary = message["test_summary"]
    return results


def terraform_binary() -> str:
    binary = shutil.which("terraform")
    if binary is None:
        pytest.skip("no terraform binary on PATH: terraform test cannot run (install Terraform >= 1.11)")
    version = json.loads(subprocess.run([binary, "version", "-json"], capture_output=True, text=True).stdout)
    found = tuple(int(part) for part in version["terraform_version"].split(".")[:2])
    if found < MINIMUM_TERRAFORM:
        pytest.skip(f"terraform {version['terraform_version']} is older than 1.11, which the stack requires")
    return binary


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TerraformTestResults]:
    binary = terraform_binary()
    if not (MIRROR / "registry.terraform.io" / "hashicorp" / "aws").is_dir():
        pytest.skip(f"no AWS provider mirror at {MIRROR} (set TF_PROVIDER_MIRROR): terraform test cannot run")
    # A copy, so that init writes .terraform and the lock file outside the checkout.
    work = tmp_path_factory.mktemp("terraform-test")
    shutil.copytree(tf.TERRAFORM_DIR, work / "terraform", ignore=shutil.ignore_patterns(".terraform*"))
    shutil.copytree(tf.REPO_ROOT / "scripts", work / "scripts")
    environment = {**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
    init = subprocess.run(
        [binary, "init", "-backend=false", f"-plugin-dir={MIRROR}", "-input=false", "-no-color"],
        cwd=work / "terraform",
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )
    assert init.returncode == 0, f"terraform init failed:\n{init.stdout}\n{init.stderr}"
    test = subprocess.run(
        [binary, "test", "-json", "-no-color"],
        cwd=work / "terraform",
        capture_output=True,
        text=True,
        env=environment,
        timeout=1200,
    )
    yield parse_test_output(test.stdout.splitlines() + test.stderr.splitlines(), test.returncode)


@pytest.mark.slow
@pytest.mark.parametrize(("file", "run"), declared_runs(), ids=lambda value: value)
def test_run_passes(results: TerraformTestResults, file: str, run: str) -> None:
    status = results.runs.get((file, run))
    assert status == "pass", f"run {run!r} of {file}: {status or 'not reported'}\n" + "\n".join(
        results.diagnostics.get((file, run), []) + results.diagnostics.get((file, ""), [])
    )


@pytest.mark.slow
def test_terraform_test_succeeds_as_a_whole(results: TerraformTestResults) -> None:
    assert set(results.runs) == set(declared_runs()), "runs terraform test reported differ from the files"
    assert results.returncode == 0 and results.summary.get("status") == "pass", (
        f"terraform test exited {results.returncode}: {results.summary}\n"
        + "\n".join(text for texts in results.diagnostics.values() for text in texts)
        + "\n".join(results.other_output[-20:])
    )


def uncommented_example(text: str) -> dict[str, Any]:
    """terraform.tfvars.example with every commented-out setting turned on."""
    setting = re.compile(r"^#\s*(?=[a-z][a-z0-9_]*\s*=)")
    parsed = tf.load_hcl("\n".join(setting.sub("", line) for line in text.splitlines()) + "\n")
    return {key: value for key, value in parsed.items() if not key.startswith("__")}


def example_run_variables() -> dict[str, Any]:
    file, run = EXAMPLE_RUN
    parsed = tf.load_hcl((TESTS_DIR / file).read_text())
    body = next(block[run] for block in parsed["run"] if run in block)
    return tf.first_block(body["variables"])


def test_example_run_sets_every_setting_of_the_example() -> None:
    example = uncommented_example(tf.TFVARS_EXAMPLE.read_text())
    assert len(example) > 60, "the example parser found too few settings"
    expected = example | EXAMPLE_EXCEPTIONS
    actual = {key: value for key, value in example_run_variables().items() if not key.startswith("__")}
    assert actual == expected, {
        key: (expected.get(key), actual.get(key))
        for key in set(expected) | set(actual)
        if expected.get(key) != actual.get(key)
    }


def run_blocks() -> dict[tuple[str, str], dict[str, Any]]:
    """Every run block of terraform/tests by (file, run), parsed."""
    blocks: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(TESTS_DIR.glob("*.tftest.hcl")):
        for block in tf.load_hcl(path.read_text()).get("run", []):
            for name, body in block.items():
                blocks[(path.name, name)] = body
    return blocks


def validation_coverage(
    validated: set[str], runs: dict[tuple[str, str], dict[str, Any]]
) -> tuple[set[str], set[str]]:
    """Validated root variables that no passing run sets, and those no expect_failures run refuses."""
    admitted: set[str] = set()
    refused: set[str] = set()
    for body in runs.values():
        if "module" in body:  # runs of a single module set that module's variables
            continue
        if "expect_failures" in body:
            refused |= {re.sub(r"^\$\{var\.(.+)\}$", r"\1", str(item)) for item in body["expect_failures"]}
        else:
            admitted |= set(tf.first_block(body.get("variables", {})))
    return validated - admitted, validated - refused


def test_every_validation_is_tested_from_both_sides() -> None:
    root = tf.load_module(tf.TERRAFORM_DIR)
    validated = {name for name, body in root.variables.items() if "validation" in body}
    never_admitted, never_refused = validation_coverage(validated, run_blocks())
    assert not never_admitted, f"no run plans an admitted edge value of: {sorted(never_admitted)}"
    assert not never_refused, f"no expect_failures run refuses a value of: {sorted(never_refused)}"


def test_parsers_report_runs_and_failures() -> None:
    lines = [
        '{"type":"test_run","@testfile":"tests/a.tftest.hcl","@testrun":"one",'
        '"test_run":{"run":"one","progress":"complete","status":"pass"}}',
        '{"type":"test_run","@testfile":"tests/a.tftest.hcl","@testrun":"two",'
        '"test_run":{"run":"two","progress":"complete","status":"fail"}}',
        '{"type":"diagnostic","@testfile":"tests/a.tftest.hcl","@testrun":"two",'
        '"diagnostic":{"severity":"error","summary":"Test assertion failed","detail":"queues"}}',
        '{"type":"test_summary","test_summary":{"status":"fail","passed":1,"failed":1}}',
        "not json",
    ]
    parsed = parse_test_output(lines, 1)
    assert parsed.runs == {("a.tftest.hcl", "one"): "pass", ("a.tftest.hcl", "two"): "fail"}
    assert parsed.diagnostics == {("a.tftest.hcl", "two"): ["error: Test assertion failed queues"]}
    assert parsed.summary["status"] == "fail" and parsed.other_output == ["not json"]

    example = uncommented_example('a = 1\n# b = "x" # why\n# Just a comment = not a setting\n#   c = [1]\n')
    assert example == {"a": 1, "b": "x", "c": [1]}

    runs: dict[tuple[str, str], dict[str, Any]] = {
        ("a", "edges"): {"variables": [{"x": 1}]},
        ("a", "refused"): {"variables": [{"x": 0}], "expect_failures": ["${var.x}"]},
        ("a", "module"): {"module": [{"source": "./m"}], "variables": [{"y": 1}]},
    }
    assert validation_coverage({"x", "y"}, runs) == ({"y"}, {"y"})
