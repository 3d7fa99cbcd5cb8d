"""CRDs: generated files are current, their schemas accept every example and refuse broken ones."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from natsflow_operator import crdgen
from natsflow_operator.kinds import KINDS
from natsflow_operator.models import API_VERSION
from pydantic import BaseModel, ValidationError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples" / "k8s").glob("*.yaml"))


def test_generated_files_are_committed_and_current() -> None:
    assert crdgen.main(["--check", "--root", str(ROOT)]) == 0, "run: python -m natsflow_operator.crdgen"


def _strict(node: dict[str, Any]) -> dict[str, Any]:
    """Refuse unknown fields, as ``kubectl apply`` (field validation Strict) does."""
    node = dict(node)
    if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        node["additionalProperties"] = False
        node["properties"] = {k: _strict(v) for k, v in node["properties"].items()}
    if isinstance(node.get("items"), dict):
        node["items"] = _strict(node["items"])
    return node


def _validator(kind: str) -> jsonschema.Draft7Validator:
    schema = crdgen.crd(KINDS[kind])["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return jsonschema.Draft7Validator(_strict(schema), format_checker=jsonschema.FormatChecker())


def check(doc: dict[str, Any]) -> list[str]:
    """Problems of one natsflow manifest: schema errors, then the model's (CEL-equivalent) rules."""
    errors = [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in _validator(doc["kind"]).iter_errors(doc)
    ]
    spec_model: type[BaseModel] = KINDS[doc["kind"]].spec
    try:
        spec_model.model_validate(doc.get("spec") or {})
    except ValidationError as exc:
        errors += [f"model: {e['msg']}" for e in exc.errors()]
    return errors


def test_crd_shape() -> None:
    for info in KINDS.values():
        version = crdgen.crd(info)["spec"]["versions"][0]
        assert version["subresources"] == {"status": {}}
        names = [c["name"] for c in version["additionalPrinterColumns"]]
        assert names[:2] == ["Ready", "Reason"] and names[-1] == "Age"
        status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
        assert status["observedGeneration"]["type"] == "integer"
        condition = status["conditions"]["items"]
        assert set(condition["properties"]) == {
            "type", "status", "reason", "message", "lastTransitionTime", "observedGeneration"
        }  # fmt: skip
        assert status["conditions"]["x-kubernetes-list-map-keys"] == ["type"]
    spec = crdgen.openapi_schema(KINDS["TaskDefinition"])["properties"]["spec"]["properties"]
    assert spec["taskType"]["x-kubernetes-validations"][0]["rule"] == "self == oldSelf"
    assert spec["timeout"]["pattern"] == r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
    assert spec["autoscaling"]["properties"]["minReplicas"]["minimum"] == 0


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_validates(path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert docs
    for doc in docs:
        if doc["apiVersion"] == API_VERSION:
            assert check(doc) == [], doc["metadata"]["name"]
        else:
            assert doc["apiVersion"] == "v1" and doc["kind"] in ("ConfigMap", "Secret")


def _example(name: str) -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load((ROOT / "examples" / "k8s" / name).read_text()))


def _set(doc: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    *parents, last = dotted.split(".")
    node = doc
    for part in parents:
        node = node.setdefault(part, {})
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return doc


_DELETE = object()
BROKEN = [
    ("charge-card-taskdefinition.yaml", "spec.timeout", "5 minutes", "does not match"),
    ("charge-card-taskdefinition.yaml", "spec.concurrency", 0, "less than the minimum"),
    (
        "charge-card-taskdefinition.yaml",
        "spec.podTemplate",
        {"spec": {"hostPID": True}},
        "hostPID is not allowed",
    ),
    ("order-trigger.yaml", "spec.workflowRef", {"version": 2}, "set name (and processId if needed)"),
    ("charge-card-taskdefinition.yaml", "spec.concurency", 5, "Additional properties are not allowed"),
    ("charge-card-taskdefinition.yaml", "spec.autoscaling.maxReplicas", "many", "is not of type 'integer'"),
    ("charge-card-taskdefinition.yaml", "spec.backoff", ["1s", "1s", "1s", "1s"], "at most `retries`"),
    ("charge-card-taskdefinition.yaml", "spec.autoscaling.minReplicas", 9, "must not exceed maxReplicas"),
    ("charge-card-taskdefinition.yaml", "spec.deletionPolicy", "Keep", "is not one of"),
    ("order-trigger.yaml", "spec.workflowRef", _DELETE, "'workflowRef' is a required property"),
    ("order-trigger.yaml", "spec.subject", "orders. created", "does not match"),
    (
        "order-trigger.yaml",
        "spec.idempotencyKey.expression",
        "payload.id",
        "set one of header and expression",
    ),
    ("order-workflow.yaml", "spec.bpmn", "x" * 102_401, "is too long"),
    ("order-workflow.yaml", "spec.bpmnFrom", {"configMapKeyRef": {"name": "m", "key": "k"}}, "exactly one"),
]


@pytest.mark.parametrize(("example", "field", "value", "message"), BROKEN, ids=[b[1] for b in BROKEN])
def test_broken_example_is_rejected(example: str, field: str, value: Any, message: str) -> None:
    doc = _set(_example(example), field, value)
    problems = check(doc)
    assert any(message in p for p in problems), problems


def test_cel_rules_mirror_the_model_rules() -> None:
    """Rules jsonschema cannot run (CEL) are in the CRD and enforced by the models."""
    spec = crdgen.openapi_schema(KINDS["Workflow"])["properties"]["spec"]
    assert spec["x-kubernetes-validations"][0]["rule"] == "has(self.bpmn) != has(self.bpmnFrom)"
    scaling = crdgen.openapi_schema(KINDS["TaskDefinition"])["properties"]["spec"]["properties"][
        "autoscaling"
    ]
    assert scaling["x-kubernetes-validations"][0]["rule"] == "self.minReplicas <= self.maxReplicas"
