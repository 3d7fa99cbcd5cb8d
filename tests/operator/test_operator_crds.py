"""CRDs: generated files are current, their schemas accept every example and refuse broken ones."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import pytest
import yaml
from natsflow_operator import crdgen
from natsflow_operator.kinds import KINDS
from natsflow_operator.models import API_VERSION
from pydantic import BaseModel, ValidationError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples" / "k8s").glob("*.yaml"))
CEL = celpy.Environment()


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


def cel_problems(schema: dict[str, Any], value: Any, path: str = "") -> list[str]:
    """The CRD's ``x-kubernetes-validations`` rules run on a value with cel-python, as the API
    server runs them (transition rules, which need the old object, are left out)."""
    problems = []
    for check in schema.get("x-kubernetes-validations", []):
        if "oldSelf" in check["rule"]:
            continue
        program = CEL.program(CEL.compile(check["rule"]))
        result = program.evaluate({"self": celpy.json_to_cel(value)})
        if not isinstance(result, celpy.celtypes.BoolType) or not result:
            problems.append(f"{path or 'root'}: {check['message']}")
    if isinstance(value, dict):
        for name, child in (schema.get("properties") or {}).items():
            if name in value:
                problems += cel_problems(child, value[name], f"{path}.{name}".lstrip("."))
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            problems += cel_problems(schema["items"], item, f"{path}[{i}]")
    return problems


def check(doc: dict[str, Any]) -> list[str]:
    """Problems of one natsflow manifest: schema errors, CEL rules, then the model's rules."""
    errors = [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in _validator(doc["kind"]).iter_errors(doc)
    ]
    if not errors:  # the API server runs the rules on objects that pass the schema
        errors += cel_problems(crdgen.openapi_schema(KINDS[doc["kind"]]), doc)
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
    ("order-workflow.yaml", "spec.forms", ["{}"] * 17, "is too long"),
    ("order-workflow.yaml", "spec.forms", ["x" * 65_537], "is too long"),
    ("order-workflow.yaml", "spec.formsFrom", [{"configMapKeyRef": {"name": "Forms", "key": "a"}}], "does not match"),
    ("order-workflow.yaml", "spec.retention.live", "1 day", "does not match"),
    ("order-workflow.yaml", "spec.retention.live", "500ms", "live must be between 1s and 87600h"),
    ("order-workflow.yaml", "spec.retention.archive", "87601h", "archive must be between 1s and 87600h"),
    ("order-workflow.yaml", "spec.retention", {"live": "2h", "archive": "1h"}, "archive must not be shorter than live"),
    ("charge-card-taskdefinition.yaml", "spec.parameters", [{"name": "a b"}], "does not match"),
    ("charge-card-taskdefinition.yaml", "spec.parameters", [{"name": "a" * 129}], "is too long"),
    ("charge-card-taskdefinition.yaml", "spec.parameters", [{"name": "a", "type": "text"}], "is not one of"),
    ("charge-card-taskdefinition.yaml", "spec.results", [{"name": "a"}, {"name": "a"}], "names must be unique"),
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


CEL_CASES = [
    ("order-workflow.yaml", "spec.retention", {"live": "0.5s"}, "spec.retention.live: live must be between 1s"),
    ("order-workflow.yaml", "spec.retention", {"live": "1h", "archive": "59m"}, "spec.retention: archive must not"),
    ("order-workflow.yaml", "spec.bpmnFrom", {"configMapKeyRef": {"name": "m", "key": "k"}}, "spec: set exactly one"),
    ("charge-card-taskdefinition.yaml", "spec.parameters", [{"name": "a"}, {"name": "a"}], "spec.parameters: names"),
    ("charge-card-taskdefinition.yaml", "spec.autoscaling.minReplicas", 9, "spec.autoscaling: minReplicas"),
]


@pytest.mark.parametrize(("example", "field", "value", "message"), CEL_CASES, ids=[c[3] for c in CEL_CASES])
def test_cel_rules_refuse_what_the_models_refuse(example: str, field: str, value: Any, message: str) -> None:
    """The API server's side (CEL, run by cel-python) and ``natsflow apply``'s side (the model)."""
    doc = _example(example)
    kind = KINDS[doc["kind"]]
    assert cel_problems(crdgen.openapi_schema(kind), doc) == []
    broken = _set(doc, field, value)
    assert any(p.startswith(message) for p in cel_problems(crdgen.openapi_schema(kind), broken))
    with pytest.raises(ValidationError):
        kind.spec.model_validate(broken["spec"], context={"name": broken["metadata"]["name"]})


def test_cel_accepts_valid_retention_and_parameters() -> None:
    doc = _set(_example("order-workflow.yaml"), "spec.retention", {"live": "1h30m", "archive": "720h"})
    assert check(doc) == []
    params = [{"name": "amount", "type": "number", "required": True}, {"name": "currency"}]
    assert check(_set(_example("charge-card-taskdefinition.yaml"), "spec.parameters", params)) == []
