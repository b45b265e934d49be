"""One settings object: every variable the app, its CLI and its Batch jobs read is a field of
`gpu_app.config.Settings`, documented in a configuration table with its default, and no table
documents a variable that no longer exists; nothing else in gpu_app/ reads the environment."""

from __future__ import annotations

import ast
import math
import re
from pathlib import Path

import pytest
from pydantic import AliasChoices
from pydantic.fields import FieldInfo

from gpu_app.config import Settings

REPO = Path(__file__).resolve().parents[2]
# The configuration tables: the app's in README.md, Elasticsearch's and the Batch jobs' beside them.
TABLES = {
    "README.md": "### Configuration (environment variables)",
    "gpu_app/index/README.md": "### Settings",
    "gpu_app/batch/README.md": None,  # every `| variable (flag) |` table of the file
}
ENV_NAME = re.compile(r"`([A-Z][A-Z0-9_]+)`")
NO_VALUE = {"\u2013", "\u2014", "-", "required"}  # dashes: no default


def env_names(info: FieldInfo, name: str) -> list[str]:
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice).upper() for choice in alias.choices]
    return [str(alias).upper() if isinstance(alias, str) else name.upper()]


FIELDS = {env: (name, info) for name, info in Settings.model_fields.items() for env in env_names(info, name)}


def table_rows(text: str, heading: str | None) -> list[list[str]]:
    """Cells of the rows of the tables under `heading` (up to the next heading), or of every table
    whose first header cell starts with "variable"."""
    lines = text.splitlines()
    if heading is not None:
        start = lines.index(heading)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("#")), len(lines))
        lines = lines[start:end]
    rows: list[list[str]] = []
    in_table = False
    for line in lines:
        if not line.startswith("|"):
            in_table = False
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not in_table:  # a header row
            in_table = heading is not None or cells[0].lower().startswith("variable")
            continue
        if in_table and not set(cells[0]) <= {"-", ":", " "}:
            rows.append(cells)
    return rows


def documented() -> list[tuple[str, list[str], str]]:
    """(file, variable names, default cell) of every configuration row."""
    found = []
    for path, heading in TABLES.items():
        for cells in table_rows((REPO / path).read_text(), heading):
            names = ENV_NAME.findall(cells[0])
            if names:
                found.append((path, names, cells[1]))
    return found


def test_every_setting_is_documented_and_every_documented_variable_is_a_setting() -> None:
    rows = documented()
    named = {name for _, names, _ in rows for name in names}
    undocumented = sorted(
        name for name, info in Settings.model_fields.items() if not set(env_names(info, name)) & named
    )
    assert not undocumented, f"settings missing from the configuration tables: {undocumented}"
    stale = sorted({f"{path}: {name}" for path, names, _ in rows for name in names if name not in FIELDS})
    assert not stale, f"documented variables that are no setting: {stale}"


def _literal(part: str) -> str | None:
    """The value a default cell part states, or None when it describes one in words."""
    value = part.strip().strip("`").strip()
    if not value or value in NO_VALUE or " " in value or ENV_NAME.fullmatch(f"`{value}`"):
        return None
    return value


def _same(stated: str, default: object) -> bool:
    if isinstance(default, bool):
        return stated.lower() == str(default).lower()
    if isinstance(default, int | float):
        try:
            return math.isclose(float(stated), float(default))
        except ValueError:
            return False
    return stated == str(default)


def test_documented_defaults_are_the_settings_defaults() -> None:
    checked = 0
    wrong = []
    for path, names, cell in documented():
        parts = re.split(r",| / ", cell)
        if len(parts) != len(names):
            parts = [cell] * len(names) if len(names) == 1 else []
        for name, part in zip(names, parts, strict=False):
            stated = _literal(part)
            field = FIELDS.get(name)
            if stated is None or field is None or field[1].default is None:
                continue
            checked += 1
            if not _same(stated, field[1].default):
                wrong.append(f"{path}: {name} documented {stated!r}, default {field[1].default!r}")
    assert not wrong, wrong
    assert checked >= 40, f"only {checked} defaults were comparable: is the table format still parsed?"


def _reads_environment(node: ast.AST) -> bool:
    if isinstance(node, ast.Attribute) and node.attr in {"environ", "getenv", "environb"}:
        return isinstance(node.value, ast.Name) and node.value.id == "os"
    return (
        isinstance(node, ast.ImportFrom)
        and node.module == "os"
        and any(alias.name in {"environ", "getenv"} for alias in node.names)
    )


@pytest.mark.parametrize(
    "path", sorted((REPO / "gpu_app").rglob("*.py")), ids=lambda p: str(p.relative_to(REPO))
)
def test_nothing_but_the_settings_reads_the_environment(path: Path) -> None:
    """Settings reads it; the script runner only hands the job's environment on to its script."""
    tree = ast.parse(path.read_text(), str(path))
    reads = [node.lineno for node in ast.walk(tree) if _reads_environment(node)]  # type: ignore[attr-defined]
    if path == REPO / "gpu_app/batch/script_runner.py":
        source = path.read_text().splitlines()
        reads = [line for line in reads if "env = os.environ.copy()" not in source[line - 1]]
    assert not reads, f"{path.relative_to(REPO)} reads the environment at lines {reads}: use Settings"
