"""The chart's console component, rendered by a real helm: off by default; Deployment, Service
and Ingress when enabled; refused without a users Secret or with bad values."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "natsflow"
ON = {
    "console": {
        "enabled": True,
        "usersSecret": {"name": "console-users", "key": "users.yaml"},
        "proxyUserHeader": "X-Forwarded-User",
        "ingress": {"enabled": True, "className": "nginx", "host": "flows.example.com"},
    }
}


@pytest.fixture(scope="module")
def helm() -> Path:
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "install-helm.sh")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode == 3:
        pytest.skip(f"helm unavailable: {proc.stderr.strip()[-300:]}")
    assert proc.returncode == 0, proc.stderr
    return Path(proc.stdout.strip().splitlines()[-1])


def template(helm: Path, tmp_path: Path, values: dict[str, Any] | None) -> subprocess.CompletedProcess[str]:
    args = [str(helm), "template", "flow", str(CHART), "--namespace", "natsflow-system"]
    if values is not None:
        path = tmp_path / "values.yaml"
        path.write_text(yaml.safe_dump(values))
        args += ["-f", str(path)]
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


def console_objects(text: str) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(text) if d]
    return [
        d for d in docs if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "console"
    ]


def test_the_console_is_off_by_default(helm: Path, tmp_path: Path) -> None:
    proc = template(helm, tmp_path, None)
    assert proc.returncode == 0, proc.stderr
    assert console_objects(proc.stdout) == []


def test_enabled_console_renders_valid_deployment_service_and_ingress(helm: Path, tmp_path: Path) -> None:
    proc = template(helm, tmp_path, ON)
    assert proc.returncode == 0, proc.stderr
    objects = {o["kind"]: o for o in console_objects(proc.stdout)}
    assert set(objects) == {"Deployment", "Service", "Ingress"}
    for manifest in objects.values():
        kubernetes_validate.validate(manifest, "1.35.0", strict=True)
    (container,) = objects["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["console", "--host", "0.0.0.0", "--port", "8080"]
    env = {e["name"]: e for e in container["env"]}
    assert env["NATSFLOW_CONSOLE_USERS"]["valueFrom"] == {
        "secretKeyRef": {"name": "console-users", "key": "users.yaml"}
    }
    assert env["NATSFLOW_CONSOLE_PROXY_USER_HEADER"]["value"] == "X-Forwarded-User"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert objects["Service"]["spec"]["ports"][0]["targetPort"] == "http"
    rule = objects["Ingress"]["spec"]["rules"][0]
    assert rule["host"] == "flows.example.com"
    assert rule["http"]["paths"][0]["backend"]["service"]["name"] == objects["Service"]["metadata"]["name"]


@pytest.mark.parametrize(
    "console",
    [
        {"enabled": True},  # no users Secret
        {"enabled": True, "usersSecret": {"name": "u", "key": "k"}, "proxyUserHeader": "bad header"},
        {"enabled": True, "usersSecret": {"name": "u", "key": "k"}, "service": {"port": 0}},
        {"enabled": False, "colour": "blue"},
    ],
)
def test_bad_console_values_are_refused(helm: Path, tmp_path: Path, console: dict[str, Any]) -> None:
    proc = template(helm, tmp_path, {"console": console})
    assert proc.returncode != 0, console
