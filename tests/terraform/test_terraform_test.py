"""`terraform test` on terraform/: whole-stack and per-module plans with the real AWS provider schema.

terraform/tests/*.tftest.hcl plan the stack with `mock_provider "aws"` (no AWS calls, no
credentials): defaults, every setting of terraform.tfvars.example, NAT, On-Demand with S3 events and
e-mails, the CPU image, Spot, the admitted edges of every variable validation, and per-module
assertions on queue routing and IAM. terraform/tests/refused/*.tftest.hcl set values just outside
those edges through the root, as a user would: each run must fail, with exactly the validations of
the variables it sets, wherever they live (expect_failures cannot name a module's variable, so these
runs fail for real and this file reads their diagnostics). The real provider comes from a filesystem
mirror (TF_PROVIDER_MIRROR, default /opt/tf-plugins); without it, or without a terraform binary
>= 1.11, these tests say so and skip.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.terraform import tfconfig as tf

MIRROR = Path(os.environ.get("TF_PROVIDER_MIRROR", "/opt/tf-plugins"))
TESTS_DIR = tf.TERRAFORM_DIR / "tests"
REFUSED_DIR = TESTS_DIR / "refused"
RUN_BLOCK = re.compile(r'^run "([^"]+)"', re.MULTILINE)
EXAMPLE_RUN = ("stack.tftest.hcl", "every_setting_of_the_example")
# Settings the example run must set differently, and why.
EXAMPLE_EXCEPTIONS = {
    # The example's null means build/lambda, which only `make package` fills.
    "lambda_build_dir": "tests/fixtures/lambda",
}
MINIMUM_TERRAFORM = (1, 11)


def declared_runs(folder: Path = TESTS_DIR) -> list[tuple[str, str]]:
    """(file, run) of every run block of the test files in folder, in file order."""
    return [
        (path.name, name)
        for path in sorted(folder.glob("*.tftest.hcl"))
        for name in RUN_BLOCK.findall(path.read_text())
    ]


@dataclass
class TerraformTestResults:
    returncode: int
    runs: dict[tuple[str, str], str] = field(default_factory=dict)
    diagnostics: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    details: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # each error's detail
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
            if diagnostic["severity"] == "error":
                results.details.setdefault(where, []).append(diagnostic.get("detail", ""))
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


@dataclass
class TerraformWorkdir:
    binary: str
    path: Path
    environment: dict[str, str]

    def test(self, *arguments: str) -> TerraformTestResults:
        test = subprocess.run(
            [self.binary, "test", "-json", "-no-color", *arguments],
            cwd=self.path,
            capture_output=True,
            text=True,
            env=self.environment,
            timeout=1200,
        )
        return parse_test_output(test.stdout.splitlines() + test.stderr.splitlines(), test.returncode)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> TerraformWorkdir:
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
    return TerraformWorkdir(binary, work / "terraform", environment)


@pytest.fixture(scope="module")
def results(workdir: TerraformWorkdir) -> TerraformTestResults:
    return workdir.test()


@pytest.fixture(scope="module")
def refused(workdir: TerraformWorkdir) -> TerraformTestResults:
    return workdir.test(f"-test-directory={REFUSED_DIR.relative_to(tf.TERRAFORM_DIR)}")


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


def run_blocks(folder: Path = TESTS_DIR) -> dict[tuple[str, str], dict[str, Any]]:
    """Every run block of the test files in folder by (file, run), parsed."""
    blocks: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(folder.glob("*.tftest.hcl")):
        for block in tf.load_hcl(path.read_text()).get("run", []):
            for name, body in block.items():
                blocks[(path.name, name)] = body
    return blocks


def file_variables(folder: Path = REFUSED_DIR) -> dict[str, set[str]]:
    """Variables each test file sets for all of its runs (its top-level variables block)."""
    return {
        path.name: set(tf.first_block(tf.load_hcl(path.read_text()).get("variables", {})))
        for path in sorted(folder.glob("*.tftest.hcl"))
    }


def validation_coverage(
    validated: set[str],
    runs: dict[tuple[str, str], dict[str, Any]],
    refused_runs: dict[tuple[str, str], dict[str, Any]],
) -> tuple[set[str], set[str]]:
    """Validated root variables that no passing run sets, and those that neither a refused run sets
    nor an expect_failures run names."""
    admitted: set[str] = set()
    refused: set[str] = set()
    for body in runs.values():
        if "module" in body:  # runs of a single module set that module's variables
            continue
        if "expect_failures" in body:
            refused |= {re.sub(r"^\$\{var\.(.+)\}$", r"\1", str(item)) for item in body["expect_failures"]}
        else:
            admitted |= set(tf.first_block(body.get("variables", {})))
    for body in refused_runs.values():
        refused |= set(tf.first_block(body.get("variables", {})))
    return validated - admitted, validated - refused


def switches(root: tf.Module) -> set[str]:
    """Bool root variables: every value is valid (they select what a module gets)."""
    return {name for name, body in root.variables.items() if tf.type_expression(body) == "bool"}


def validated_root_variables(root: tf.Module) -> set[str]:
    """Root variables whose value meets a validation: their own or a module's they are passed to.
    Not bools: every bool is a valid value (a switch that selects what a module gets)."""
    validated = set(tf.validation_rules().values())
    return {
        name
        for name, targets in tf.root_variable_targets(root).items()
        if targets & validated and name not in switches(root)
    }


def test_every_validation_is_tested_from_both_sides() -> None:
    root = tf.load_module(tf.TERRAFORM_DIR)
    never_admitted, never_refused = validation_coverage(
        validated_root_variables(root), run_blocks(), run_blocks(REFUSED_DIR)
    )
    assert not never_admitted, f"no run plans an admitted edge value of: {sorted(never_admitted)}"
    assert not never_refused, (
        f"no refused run sets a value just outside the edges of: {sorted(never_refused)}"
    )


def refusal_problems(
    details: list[str],
    set_here: set[str],
    set_by_file: set[str],
    targets: dict[str, set[tf.VariableAddress]],
    rules: dict[tuple[str, int], tf.VariableAddress],
) -> list[str]:
    """What is wrong with a refused run's errors: an error that is not a validation of a variable the
    run sets (directly or passed on to a module), or a variable the run sets that nothing refused."""
    problems = []
    fired: set[tf.VariableAddress] = set()
    allowed = set().union(*(targets.get(name, set()) for name in set_here | set_by_file))
    for detail in details:
        address = tf.failed_validation(detail, rules)
        if address is None or address not in allowed:
            problems.append(f"unexpected error: {detail.splitlines()[0] if detail else '(no detail)'}")
        else:
            fired.add(address)
    for name in sorted(set_here):
        if not targets.get(name, set()) & fired:
            problems.append(f"{name}: no validation refused its value")
    return problems


@pytest.mark.slow
@pytest.mark.parametrize(("file", "run"), declared_runs(REFUSED_DIR), ids=lambda value: value)
def test_refused_run_fails_with_the_validations_of_its_variables(
    refused: TerraformTestResults, file: str, run: str
) -> None:
    status = refused.runs.get((file, run))
    assert status in ("error", "fail"), f"run {run!r} of {file} should be refused: {status or 'not reported'}"
    root = tf.load_module(tf.TERRAFORM_DIR)
    body = run_blocks(REFUSED_DIR)[(file, run)]
    set_here = {name for name in tf.first_block(body.get("variables", {})) if not name.startswith("__")}
    problems = refusal_problems(
        refused.details.get((file, run), []),
        set_here - switches(root),
        file_variables()[file] | (set_here & switches(root)),
        tf.root_variable_targets(root),
        tf.validation_rules(),
    )
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_every_validation_a_user_can_reach_is_refused(refused: TerraformTestResults) -> None:
    """Rule by rule, root and module: each validation a bad root value can reach fired in a refused
    run (root validations named by an expect_failures run count too)."""
    assert set(refused.runs) == set(declared_runs(REFUSED_DIR)), "refused runs reported differ from the files"
    rules = tf.validation_rules()
    root = tf.load_module(tf.TERRAFORM_DIR)
    required = tf.required_refusals(tf.root_variable_targets(root), set(rules.values()), switches(root))
    fired = {tf.failed_rule(detail) for details in refused.details.values() for detail in details}
    expected_elsewhere = {
        (tf.ROOT_FOLDER, re.sub(r"^\$\{var\.(.+)\}$", r"\1", str(item)))
        for body in run_blocks().values()
        if "module" not in body
        for item in body.get("expect_failures", [])
    }
    never = sorted(
        f"{file}:{line} ({folder} {name})"
        for (file, line), address in rules.items()
        for folder, name in [address]
        if address in required and (file, line) not in fired and address not in expected_elsewhere
    )
    assert not never, "validations no refused run reaches through the root:\n" + "\n".join(never)


def test_no_root_variable_repeats_a_module_validation() -> None:
    root = tf.load_module(tf.TERRAFORM_DIR)
    modules = [tf.load_module(path) for path in tf.all_module_dirs()[1:]]
    problems = tf.check_root_validations_not_repeated(root, modules)
    assert not problems, "\n".join(problems)


def test_catches_a_repeated_validation(tmp_path: Path) -> None:
    child = tmp_path / "modules" / "child"
    child.mkdir(parents=True)
    (child / "variables.tf").write_text(
        'variable "size" {\n  type = number\n  validation {\n    condition     = var.size >= 1\n'
        '    error_message = "size must be at least 1."\n  }\n}\n'
    )
    (tmp_path / "variables.tf").write_text(
        'variable "child_size" {\n  type = number\n  validation {\n    condition     = var.child_size >= 1\n'
        '    error_message = "child_size must be at least 1."\n  }\n}\n'
        'variable "other" {\n  type = number\n  validation {\n    condition     = var.other >= 2\n'
        '    error_message = "other must be at least 2."\n  }\n}\n'
    )
    (tmp_path / "main.tf").write_text(
        'module "child" {\n  source = "./modules/child"\n  size   = var.child_size\n}\n'
    )
    root, module = tf.load_module(tmp_path), tf.load_module(child)
    assert tf.check_root_validations_not_repeated(root, [module]) == [
        "root variable child_size repeats the validation of modules/child variable size: "
        "let the module refuse the value"
    ]
    rules = tf.validation_rules(tmp_path)
    assert rules == {
        ("modules/child/variables.tf", 3): ("modules/child", "size"),
        ("variables.tf", 3): (".", "child_size"),
        ("variables.tf", 10): (".", "other"),
    }
    targets = tf.root_variable_targets(root)
    assert targets["child_size"] == {(".", "child_size"), ("modules/child", "size")}
    # The module's rule is behind the root's own: only the root rules are required from the root.
    assert tf.required_refusals(targets, set(rules.values())) == {(".", "child_size"), (".", "other")}
    # Without the root's own rule, the module's is the one a user meets.
    del rules[("variables.tf", 3)]
    assert tf.required_refusals(targets, set(rules.values())) == {("modules/child", "size"), (".", "other")}
    assert tf.required_refusals(targets, set(rules.values()), {"child_size"}) == {(".", "other")}
    detail = (
        "size must be at least 1.\n\n"
        "This was checked by the validation rule at modules/child/variables.tf:3,3-13."
    )
    assert tf.failed_validation(detail, rules) == ("modules/child", "size")
    assert refusal_problems([detail], {"child_size"}, set(), targets, rules) == []
    both = {"child_size", "other"}
    assert refusal_problems([detail, "Unsupported argument"], both, set(), targets, rules) == [
        "unexpected error: Unsupported argument",
        "other: no validation refused its value",
    ]


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
        ("a", "edges"): {"variables": [{"x": 1, "z": 1}]},
        ("a", "refused"): {"variables": [{"x": 0}], "expect_failures": ["${var.x}"]},
        ("a", "module"): {"module": [{"source": "./m"}], "variables": [{"y": 1}]},
    }
    refused_runs = {("r", "below"): {"variables": [{"z": -1}]}}
    assert validation_coverage({"x", "y", "z"}, runs, refused_runs) == ({"y"}, {"y"})
