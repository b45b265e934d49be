"""Static reading of docker/Dockerfile.* and docker/docker-compose.yml for the tests (no engine here).

A small Dockerfile reader (continuations, comments, stages, exec-form JSON, shell words) and the
app's settings names derived from the pydantic classes, so the tests compare against the code.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from gpu_app.config import Settings

REPO = Path(__file__).resolve().parents[2]
DOCKER_DIR = REPO / "docker"
REQUIREMENTS = REPO / "requirements"
DOCKERFILES = {name: DOCKER_DIR / f"Dockerfile.{name}" for name in ("gpu", "cpu", "lambda")}
COMPOSE_FILE = DOCKER_DIR / "docker-compose.yml"


@dataclass
class Instruction:
    keyword: str
    value: str
    stage: str
    line: int


@dataclass
class Dockerfile:
    path: Path
    instructions: list[Instruction] = field(default_factory=list)
    # stage name (or index as a string) -> base image or stage it is built FROM
    stages: dict[str, str] = field(default_factory=dict)

    def of(self, keyword: str, stage: str | None = None) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword and (stage is None or i.stage == stage)]

    @property
    def final_stage(self) -> str:
        return list(self.stages)[-1]


def parse_dockerfile(path: Path) -> Dockerfile:
    """Instructions with continuation lines joined and comments dropped, as Docker reads them."""
    result = Dockerfile(path)
    stage = ""
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # Docker drops comment lines inside a continued instruction
        if not pending:
            start = number
        if line.endswith("\\"):
            pending.append(line[:-1])
            continue
        pending.append(line)
        text = "".join(pending)
        pending = []
        keyword, _, value = text.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = value.split()
            stage = words[2] if len(words) >= 3 and words[1].upper() == "AS" else str(len(result.stages))
            result.stages[stage] = words[0]
        result.instructions.append(Instruction(keyword, value.strip(), stage, start))
    assert not pending, f"{path}: dangling line continuation"
    return result


def exec_form(value: str) -> list[str]:
    """`["a", "b"]` of CMD/ENTRYPOINT/HEALTHCHECK CMD; the shell form is refused on purpose."""
    parsed = json.loads(value)
    assert isinstance(parsed, list) and all(isinstance(item, str) for item in parsed), value
    return parsed


def healthcheck_command(dockerfile: Dockerfile) -> list[str]:
    (check,) = dockerfile.of("HEALTHCHECK", dockerfile.final_stage)
    _, _, command = check.value.partition(" CMD ")
    return exec_form(command.strip())


def env_of(dockerfile: Dockerfile, stage: str) -> dict[str, str]:
    """ENV key=value pairs of a stage (later ones win), values as written."""
    env: dict[str, str] = {}
    for instruction in dockerfile.of("ENV", stage):
        for word in shlex.split(instruction.value):
            key, sep, value = word.partition("=")
            assert sep, f"{dockerfile.path.name}:{instruction.line}: use ENV KEY=VALUE"
            env[key] = value
    return env


def arg_defaults(dockerfile: Dockerfile, name: str) -> list[str]:
    return [
        i.value.partition("=")[2].strip('"')
        for i in dockerfile.of("ARG")
        if i.value.partition("=")[0] == name and "=" in i.value
    ]


def shell_commands(run_value: str) -> list[list[str]]:
    """The simple commands of a RUN (split at && || ; |), each as shell words."""
    lexer = shlex.shlex(run_value, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token in {"&&", "||", ";", "|"}:
            commands.append([])
        else:
            commands[-1].append(token)
    return [command for command in commands if command]


def pip_commands(dockerfile: Dockerfile) -> list[tuple[Instruction, list[str]]]:
    """Every `pip ...` / `python -m pip ...` command of every RUN, with the words after `pip`."""
    found = []
    for instruction in dockerfile.of("RUN"):
        for words in shell_commands(instruction.value):
            # `if [ ... ]; then pip ...` leaves `then` in front of the command.
            while words and words[0] in {"then", "else", "do"}:
                words = words[1:]
            if words[:1] in (["pip"], ["pip3"]):
                found.append((instruction, words[1:]))
            elif len(words) >= 3 and words[0].startswith("python") and words[1:3] == ["-m", "pip"]:
                found.append((instruction, words[3:]))
    return found


def pins(requirements_file: Path) -> dict[str, str]:
    """name -> version of every `name==version` line (names normalised like pip does)."""
    result = {}
    for line in requirements_file.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;]+)", line)
        assert match, f"{requirements_file.name}: not an exact pin: {line!r}"
        result[normalise(match.group(1))] = match.group(3)
    return result


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def settings_env_names(*classes: type[BaseSettings]) -> set[str]:
    """Environment names pydantic-settings reads for these classes (field names or their aliases)."""
    names: set[str] = set()
    for cls in classes:
        for name, info in cls.model_fields.items():
            alias = info.validation_alias
            if isinstance(alias, AliasChoices):
                names.update(str(choice).upper() for choice in alias.choices)
            elif isinstance(alias, str):
                names.add(alias.upper())
            else:
                names.add(name.upper())
    return names


APP_ENV_NAMES = settings_env_names(Settings)


def package_lambdas() -> ModuleType:
    """scripts/package_lambdas.py (scripts/ is not a package): its FUNCTIONS and PYTHON_VERSION."""
    spec = importlib.util.spec_from_file_location("package_lambdas", REPO / "scripts" / "package_lambdas.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
