"""The delivery docs stay true: every YAML example parses and validates, every relative link resolves."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCS = [
    "install",
    "argocd",
    "multitenancy",
    "remote-sites",
    "upgrading",
    "troubleshooting",
    "quickstart-kind",
]
PAGES = [ROOT / "docs" / f"{name}.md" for name in DOCS] + [
    ROOT / "charts" / "natsflow" / "README.md",
    ROOT / "e2e" / "README.md",
]
VALUES_SCHEMA = json.loads((ROOT / "charts" / "natsflow" / "values.schema.json").read_text())


def crd_schemas() -> dict[str, dict[str, Any]]:
    schemas = {}
    for path in (ROOT / "crds").glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        for version in crd["spec"]["versions"]:
            key = f"{crd['spec']['group']}/{version['name']}/{crd['spec']['names']['kind']}"
            schemas[key] = version["schema"]["openAPIV3Schema"]
    return schemas


def yaml_blocks(page: Path) -> list[str]:
    return re.findall(r"```ya?ml\n(.*?)```", page.read_text(), re.S)


@pytest.mark.parametrize(
    "page", PAGES, ids=lambda p: p.name if p.parent.name == "docs" else str(p.parent.name)
)
def test_yaml_examples_are_valid(page: Path) -> None:
    crds = crd_schemas()
    for block in yaml_blocks(page):
        for doc in yaml.safe_load_all(block):
            if not isinstance(doc, dict):
                continue
            kind, api = doc.get("kind"), doc.get("apiVersion", "")
            if kind and api.startswith("natsflow.io/"):
                schema = crds.get(f"{api}/{kind}")
                assert schema, f"{page.name}: no CRD for {api} {kind}"
                jsonschema.validate(doc, schema)
            elif kind and api == "argoproj.io/v1alpha1":
                assert doc["spec"]["destination"], page.name
            elif kind:
                kubernetes_validate.validate(doc, "1.35.0", strict=True)
            elif set(doc) <= set(VALUES_SCHEMA["properties"]):
                jsonschema.validate(doc, VALUES_SCHEMA)  # a chart values snippet


def test_crd_schema_validation_is_not_vacuous() -> None:
    schema = crd_schemas()["natsflow.io/v1alpha1/TaskDefinition"]
    bad = {
        "apiVersion": "natsflow.io/v1alpha1",
        "kind": "TaskDefinition",
        "metadata": {"name": "x"},
        "spec": {"taskType": "t", "replicas": -1},
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_relative_links_resolve(page: Path) -> None:
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
        if re.match(r"^[a-z]+://", target):
            continue
        assert (page.parent / target).exists(), f"{page}: broken link {target}"


def test_paths_named_in_the_docs_exist() -> None:
    for page in PAGES:
        for path in re.findall(
            r"`((?:deploy|charts|crds|e2e|scripts|docs|engine|operator)/[\w./-]*)`", page.read_text()
        ):
            if "<" in path or "*" in path:
                continue
            assert (ROOT / path).exists(), f"{page.name} names {path}, which does not exist"
