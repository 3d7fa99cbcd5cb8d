"""Strict gates in the test run: ruff, mypy --strict and the import layering contracts.

The repository maps ``engine/`` and ``operator/`` into the ``natsflow`` package; mypy and
import-linter read the package through a link tree shaped like the installed package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def link_tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    tree = tmp_path_factory.mktemp("pkg")
    pkg = tree / "natsflow"
    pkg.mkdir()
    for entry in (ROOT / "src" / "natsflow").iterdir():
        if entry.name != "__pycache__":
            (pkg / entry.name).symlink_to(entry)
    (pkg / "engine").symlink_to(ROOT / "engine")
    (pkg / "operator").symlink_to(ROOT / "operator")
    yield tree
    shutil.rmtree(tree, ignore_errors=True)


def run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=env, timeout=600, check=False)


def test_ruff() -> None:
    result = run([str(BIN / "ruff"), "check", "."])
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict(link_tree: Path) -> None:
    env = {**os.environ, "MYPYPATH": str(link_tree)}
    result = run([str(BIN / "mypy"), "--cache-dir", str(link_tree / ".mypy_cache"), "-p", "natsflow"], env)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr


def test_import_layers(link_tree: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(link_tree)}
    result = run([str(BIN / "lint-imports"), "--no-cache"], env)
    report = "\n".join(line for line in result.stdout.splitlines() if line.isascii())  # drop the banner
    assert result.returncode == 0, report[-6000:] + result.stderr
