"""Build one deployment zip per Lambda function, reproducibly: `build/lambda/<function>.zip`.

Each zip holds the `lambdas` package (common code plus that function's folder), the `contract`
package the Lambdas share with the app, and the runtime
dependencies of requirements/lambda.txt except boto3/botocore (the Lambda runtime provides them),
installed as wheels for python3.12 on the chosen architecture (none at present: the handlers need
only boto3). Entries are sorted, timestamps and
permissions fixed, bytecode left out: the same sources and pins give byte-identical zips.

    python scripts/package_lambdas.py [--arch x86_64|arm64] [--out build/lambda]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ("dispatcher", "controller", "monitor", "idle_stopper")
PLATFORMS = {"x86_64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}
PYTHON_VERSION = "3.12"
PROVIDED_BY_RUNTIME = ("boto3", "botocore")
FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can hold
SKIPPED_PARTS = {"__pycache__", "bin"}  # bytecode, and console scripts (useless in Lambda)
# Folders every function carries whole: the contract with the app, and the Lambdas' common code.
SHARED_FOLDERS = ("contract", "lambdas/common")


def requirements() -> list[str]:
    """Pinned lines of requirements/lambda.txt, without what the runtime already has."""
    lines = (ROOT / "requirements" / "lambda.txt").read_text().splitlines()
    pins = [line.split("#")[0].strip() for line in lines]
    return [pin for pin in pins if pin and not pin.lower().startswith(PROVIDED_BY_RUNTIME)]


def install_dependencies(arch: str, target: Path) -> None:
    if not requirements():  # today: boto3 is all the handlers import besides the standard library
        return
    subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--quiet",
            "--target", str(target),
            "--platform", PLATFORMS[arch],
            "--implementation", "cp",
            "--python-version", PYTHON_VERSION,
            "--only-binary=:all:",
            "--no-compile",
            "--no-warn-conflicts",  # checks the build venv, not the target
            "-c", str(ROOT / "requirements" / "constraints.txt"),
            *requirements(),
        ],
        check=True,
    )  # fmt: skip


def files_under(base: Path, relative_to: Path) -> Iterator[tuple[str, Path]]:
    for path in base.rglob("*"):
        parts = path.relative_to(relative_to).parts
        if path.is_file() and not SKIPPED_PARTS.intersection(parts) and path.suffix != ".pyc":
            yield "/".join(parts), path


def source_files(function: str) -> Iterator[tuple[str, Path]]:
    """`lambdas/__init__.py`, SHARED_FOLDERS and the function's own folder (only .py)."""
    yield "lambdas/__init__.py", ROOT / "lambdas" / "__init__.py"
    for folder in (*SHARED_FOLDERS, f"lambdas/{function}"):
        for name, path in files_under(ROOT / folder, ROOT):
            if path.suffix == ".py":
                yield name, path


def write_zip(entries: Iterable[tuple[str, Path]], destination: Path) -> None:
    """Sorted entries, fixed time and permissions, so equal inputs give equal bytes."""
    temporary = destination.with_suffix(".zip.tmp")
    with zipfile.ZipFile(temporary, "w") as archive:
        for name, path in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.external_attr = 0o100644 << 16  # regular file, rw-r--r--
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, whatever system builds it
            archive.writestr(info, path.read_bytes(), compresslevel=9)
    temporary.replace(destination)


def build(arch: str, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lambda-deps-") as scratch:
        dependencies = Path(scratch)
        install_dependencies(arch, dependencies)
        shared = list(files_under(dependencies, dependencies))
        zips = []
        for function in FUNCTIONS:
            destination = out / f"{function}.zip"
            write_zip([*shared, *source_files(function)], destination)
            zips.append(destination)
    return zips


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=sorted(PLATFORMS), default=os.environ.get("LAMBDA_ARCH", "x86_64"))
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "lambda")
    args = parser.parse_args(argv)
    for path in build(args.arch, args.out):
        print(f"{path} ({path.stat().st_size} bytes, {args.arch})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
