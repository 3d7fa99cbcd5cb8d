"""values.schema.json is strict (helm refuses bad values) and the chart's CRDs are the repo's CRDs."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "natsflow"
RunHelm = Callable[..., subprocess.CompletedProcess[str]]

BAD_VALUES: dict[str, tuple[dict[str, Any], str]] = {
    "unknown top-level key": ({"engin": {"replicas": 3}}, "additional properties 'engin'"),
    "typo in a component": ({"engine": {"replicass": 3}}, "additional properties 'replicass'"),
    "log format": ({"logging": {"format": "xml"}}, "/logging/format"),
    "removed tenant mode": ({"nats": {"tenantMode": "accounts"}}, "additional properties 'tenantMode'"),
    "nats url scheme": ({"nats": {"url": "http://nats:4222"}}, "/nats/url"),
    "namespace name": ({"operator": {"watchNamespaces": ["Tenant_A"]}}, "/operator/watchNamespaces/0"),
    "negative replicas": ({"engine": {"replicas": -1}}, "/engine/replicas"),
    "health port": ({"health": {"port": 0}}, "/health/port"),
    "replicas as string": ({"triggerServer": {"replicas": "2"}}, "/triggerServer/replicas"),
    "unknown credentials key": ({"nats": {"credentialsSecret": {"nam": "x"}}}, "additional properties 'nam'"),
    "bad digest": ({"image": {"digest": "latest"}}, "/image/digest"),
}


@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_schema_makes_helm_template_fail(run_helm: RunHelm, case: str) -> None:
    values, expected = BAD_VALUES[case]
    proc = run_helm("template", values)
    assert proc.returncode != 0, f"helm accepted {values}"
    assert "values don't meet the specifications of the schema" in proc.stderr
    assert expected in proc.stderr, proc.stderr


def test_hpa_bounds_are_checked(run_helm: RunHelm) -> None:
    proc = run_helm(
        "template", {"engine": {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}}}
    )
    assert proc.returncode != 0 and "minReplicas must not exceed" in proc.stderr


def test_default_values_satisfy_the_schema_and_cover_it() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.validate(values, schema)

    def walk(node: dict[str, Any], vals: dict[str, Any], path: str) -> None:
        """Every key of values.yaml is declared; every declared key of a strict level has a default."""
        if node.get("additionalProperties") is not False:
            return
        props = node["properties"]
        assert set(vals) <= set(props), f"{path}: undeclared {set(vals) - set(props)}"
        missing = set(props) - set(vals) - {"global"}
        assert not missing, f"{path}: no default in values.yaml for {missing}"
        for key, sub in props.items():
            sub = schema["definitions"][sub["$ref"].rsplit("/", 1)[1]] if "$ref" in sub else sub
            if isinstance(vals.get(key), dict) and sub.get("type") == "object":
                walk(sub, vals[key], f"{path}.{key}")

    walk(schema, values, "values")


def crd_files(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.glob("*.yaml"))}


def test_chart_crds_are_copies_of_the_generated_crds() -> None:
    repo = crd_files(ROOT / "crds")
    chart = crd_files(CHART / "crds")
    fix = "run: cp crds/*.yaml charts/natsflow/crds/"
    assert repo, "crds/ holds no generated CRD yet (the operator's CRD generator writes it)"
    assert set(chart) == set(repo), f"charts/natsflow/crds/ differs from crds/ in files; {fix}"
    for name, text in repo.items():
        assert chart[name] == text, f"charts/natsflow/crds/{name} is stale; {fix}"
    kinds = set()
    for text in repo.values():
        for doc in yaml.safe_load_all(text):
            if doc:
                assert doc["kind"] == "CustomResourceDefinition"
                scope = "Cluster" if doc["spec"]["names"]["kind"] == "Tenant" else "Namespaced"
                assert doc["spec"]["group"] == "natsflow.io" and doc["spec"]["scope"] == scope
                assert "v1alpha1" in [v["name"] for v in doc["spec"]["versions"]]
                kinds.add(doc["spec"]["names"]["kind"])
    assert kinds == {"Workflow", "TaskDefinition", "Trigger", "Tenant"}
