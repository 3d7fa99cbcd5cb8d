"""Strict gates in the test run: ruff, mypy --strict and the import layering contracts.

Both run on the plain editable install: every part is its own import package
(``natsflow``, ``natsflow_engine``, ``natsflow_operator``) whose folder follows from its name.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=env, timeout=600, check=False)


def test_ruff() -> None:
    result = run([str(BIN / "ruff"), "check", "."])
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict(tmp_path: Path) -> None:
    result = run([str(BIN / "mypy"), "--cache-dir", str(tmp_path / ".mypy_cache")])
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr


def test_import_layers() -> None:
    result = run([str(BIN / "lint-imports"), "--no-cache"])
    report = "\n".join(line for line in result.stdout.splitlines() if line.isascii())  # drop the banner
    assert result.returncode == 0, report[-6000:] + result.stderr
