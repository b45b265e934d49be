"""checkov on terraform/: no failed check, and every skip is an inline comment with a real reason.

checkov lives in its own virtual environment (.venv-checkov, `make checkov-venv`): its fork of the
HCL parser clashes with python-hcl2.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.terraform.tfconfig import REPO_ROOT, TERRAFORM_DIR

CHECKOV = REPO_ROOT / ".venv-checkov" / "bin" / "checkov"
SKIP_COMMENT = re.compile(r"checkov:skip=(?P<check>[^:\s]*)(?::(?P<reason>.*))?$")
CHECK_ID = re.compile(r"^CKV2?_AWS_\d+$")
MIN_REASON_WORDS = 6


def run_checkov(directory: Path) -> dict[str, Any]:
    """checkov's JSON report for the Terraform in `directory` (summary and results)."""
    if not CHECKOV.is_file():
        pytest.fail(f"{CHECKOV} is missing: run `make checkov-venv`")
    command = [
        str(CHECKOV),
        "--directory",
        str(directory),
        "--framework",
        "terraform",
        "--skip-download",
        "--compact",
        "--output",
        "json",
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    # Exit code 1 only means "some check failed"; anything else is checkov itself failing.
    if completed.returncode not in (0, 1):
        pytest.fail(f"checkov exited {completed.returncode}:\n{completed.stderr[-4000:]}")
    report = json.loads(completed.stdout)
    if isinstance(report, list):
        report = next(item for item in report if item.get("check_type") == "terraform")
    if "summary" not in report:  # nothing to scan: checkov prints the bare summary
        return {"summary": report, "results": {"failed_checks": [], "skipped_checks": []}}
    return report


def describe(check: dict[str, Any]) -> str:
    lines = check.get("file_line_range") or ["?"]
    return (
        f"{check['check_id']} {check['resource']} ({check['file_path']}:{lines[0]}): "
        f"{check['check_name']} {check.get('guideline') or ''}".rstrip()
    )


def skip_comments(directory: Path) -> list[tuple[str, int, str, str]]:
    """(file, line, check id, reason) of every checkov:skip comment under `directory`."""
    found = []
    for path in sorted(directory.rglob("*.tf")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            match = SKIP_COMMENT.search(line)
            if match:
                reason = (match.group("reason") or "").strip()
                found.append((str(path.relative_to(directory)), number, match.group("check"), reason))
    return found


def bad_skips(comments: list[tuple[str, int, str, str]]) -> list[str]:
    problems = []
    for file, line, check, reason in comments:
        where = f"{file}:{line}"
        if not CHECK_ID.match(check):
            problems.append(f"{where}: {check!r} is not a checkov AWS check id")
        if len(reason.split()) < MIN_REASON_WORDS:
            problems.append(
                f"{where}: skip of {check} needs a real reason (checkov:skip=<ID>:<reason>), got {reason!r}"
            )
    return problems


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    return run_checkov(TERRAFORM_DIR)


@pytest.mark.slow
def test_checkov_has_no_failed_checks(report: dict[str, Any]) -> None:
    summary = report["summary"]
    failures = [describe(check) for check in report["results"]["failed_checks"]]
    assert summary["parsing_errors"] == 0, f"checkov could not parse {summary['parsing_errors']} files"
    assert summary["passed"] > 0, "checkov found nothing to check"
    assert summary["failed"] == 0, "checkov failed checks:\n" + "\n".join(failures)


def test_every_skip_has_a_reason() -> None:
    comments = skip_comments(TERRAFORM_DIR)
    assert comments, "no skip comments found: the parser is probably broken"
    problems = bad_skips(comments)
    assert not problems, "\n".join(problems)


def without_skip_comments(source: Path, target: Path) -> None:
    """A copy of the .tf files under `source` with every checkov:skip comment blanked (lines keep
    their numbers, so that failures can be matched with the comments)."""
    for path in source.rglob("*.tf"):
        if ".terraform" in path.parts:
            continue
        copy = target / path.relative_to(source)
        copy.parent.mkdir(parents=True, exist_ok=True)
        lines = path.read_text().splitlines(True)
        copy.write_text("".join("#\n" if SKIP_COMMENT.search(line) else line for line in lines))


def unneeded_skips(directory: Path, comments: list[tuple[str, int, str, str]], tmp_path: Path) -> list[str]:
    """Skip comments whose check passes anyway once every skip is removed: they hide nothing."""
    bare = tmp_path / "without-skips"
    without_skip_comments(directory, bare)
    failed = [
        (Path(check["file_path"].lstrip("/")).as_posix(), check["check_id"], *check["file_line_range"])
        for check in run_checkov(bare)["results"]["failed_checks"]
    ]
    return [
        f"{file}:{line}: {check}"
        for file, line, check, _ in comments
        if not any(
            (file, check) == (failed_file, failed_check) and first <= line <= last
            for failed_file, failed_check, first, last in failed
        )
    ]


@pytest.mark.slow
def test_every_skip_is_needed(tmp_path: Path) -> None:
    """checkov reports a skip as used whenever the check applies, even if it would pass: only a run
    without the skips shows which ones still hide a failure."""
    unneeded = unneeded_skips(TERRAFORM_DIR, skip_comments(TERRAFORM_DIR), tmp_path)
    assert not unneeded, "skips of checks that pass without them (remove them):\n" + "\n".join(unneeded)


@pytest.mark.slow
def test_unneeded_skips_are_found(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "main.tf").write_text(
        'resource "aws_sqs_queue" "plain" {\n'
        "  # checkov:skip=CKV_AWS_27:This queue holds nothing sensitive at all, ever.\n"
        '  name = "plain"\n'
        "}\n"
        'resource "aws_sqs_queue" "encrypted" {\n'
        "  # checkov:skip=CKV_AWS_27:Encrypted anyway, so this skip hides nothing at all.\n"
        '  name                    = "encrypted"\n'
        "  sqs_managed_sse_enabled = true\n"
        "}\n"
    )
    assert unneeded_skips(source, skip_comments(source), tmp_path) == ["main.tf:6: CKV_AWS_27"]


@pytest.mark.slow
def test_every_skip_is_used(report: dict[str, Any]) -> None:
    """A skip comment whose check no longer fires is stale and hides nothing: remove it."""
    skipped = {
        (Path(check["file_path"].lstrip("/")).as_posix(), check["check_id"])
        for check in report["results"]["skipped_checks"]
    }
    stale = [
        f"{file}:{line}: {check}"
        for file, line, check, _ in skip_comments(TERRAFORM_DIR)
        if (Path(file).as_posix(), check) not in skipped
    ]
    assert not stale, "skip comments checkov did not use:\n" + "\n".join(stale)


def test_skip_rules_catch_bad_comments(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text(
        'resource "aws_s3_bucket" "a" {\n'
        "  # checkov:skip=CKV_AWS_18\n"
        "  # checkov:skip=CKV_AWS_21:later\n"
        "  # checkov:skip=ALL:because this bucket is special in many ways\n"
        "  # checkov:skip=CKV2_AWS_62:Nothing consumes events of this bucket at all.\n"
        '  bucket = "a"\n'
        "}\n"
    )
    assert bad_skips(skip_comments(tmp_path)) == [
        "main.tf:2: skip of CKV_AWS_18 needs a real reason (checkov:skip=<ID>:<reason>), got ''",
        "main.tf:3: skip of CKV_AWS_21 needs a real reason (checkov:skip=<ID>:<reason>), got 'later'",
        "main.tf:4: 'ALL' is not a checkov AWS check id",
    ]


@pytest.mark.slow
def test_checkov_reports_failures(tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text(
        'resource "aws_s3_bucket" "open" {\n  bucket = "open"\n}\n'
        'resource "aws_security_group" "ssh" {\n'
        '  description = "open"\n'
        "  ingress {\n"
        "    from_port   = 22\n"
        "    to_port     = 22\n"
        '    protocol    = "tcp"\n'
        '    cidr_blocks = ["0.0.0.0/0"]\n'
        "  }\n"
        "}\n"
    )
    result = run_checkov(tmp_path)
    failed = {check["check_id"] for check in result["results"]["failed_checks"]}
    assert result["summary"]["failed"] > 0
    assert {"CKV_AWS_24", "CKV2_AWS_6"} <= failed, sorted(failed)
