"""deploy/argocd: the Lua health check run for real (lupa) and the Argo CD manifests that use it."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import lua51 as lupa  # Argo CD runs gopher-lua, a Lua 5.1

ROOT = Path(__file__).resolve().parents[2]
ARGOCD = ROOT / "deploy" / "argocd"
HEALTH_LUA = (ARGOCD / "health.lua").read_text()
KINDS = ("Workflow", "TaskDefinition", "Trigger")

# The reasons the operator reports on a failing part of Ready, by what the handlers do next.
# Terminal: reported without a retry (InvalidSpec/InvalidBpmn/InvalidTenant: the handler returns;
# DeploymentConflict: WorkloadReady=False without TemporaryError). Argo CD shows them Degraded.
TERMINAL = (
    "InvalidSpec",
    "InvalidBpmn",
    "InvalidForm",
    "InvalidTenant",
    "DeploymentConflict",
    "ServiceAccountNotAllowed",
    "NatsPermissionDenied",
    "Forbidden",
    "AmbiguousProcess",
    "ProcessNotInWorkflow",
)
# Retried (kopf.TemporaryError) until the cause is gone: Progressing.
RETRIED = (
    "NatsUnavailable",
    "NatsSecretNotFound",
    "NatsSecretInvalid",
    "ConfigMapNotFound",
    "ConfigMapKeyNotFound",
    "StreamNotFound",
    "DeploymentFailed",
    "ServiceAccountNotFound",
    "WorkflowNotFound",
    "WorkflowNotReady",
    # with Tenant accounts: retried until the Tenant, its Secrets or the resolver are there
    "TenantNotFound",
    "TenantNotReady",
    "SigningKeyNotFound",
    "SigningKeyInvalid",
    "SystemCredentialsNotFound",
    "CredentialsSecretConflict",
)


def to_lua(lua: Any, value: Any) -> Any:
    """JSON-like Python -> Lua the way Argo CD hands `obj` to the script (lists 1-based, null -> nil)."""
    if isinstance(value, dict):
        return lua.table_from({k: to_lua(lua, v) for k, v in value.items() if v is not None})
    if isinstance(value, list):
        return lua.table_from([to_lua(lua, v) for v in value])
    return value


def health(obj: dict[str, Any], script: str = HEALTH_LUA) -> tuple[str, str]:
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = to_lua(lua, obj)
    hs = lua.execute(script)
    assert set(hs.keys()) <= {"status", "message"}
    return hs["status"], hs["message"]


def resource(
    kind: str = "Workflow", generation: int = 3, status: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "natsflow.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": "orders", "namespace": "tenant-a", "generation": generation},
        "spec": {},
        "status": status,
    }


def ready(status: str, reason: str = "", message: str = "", observed: int | None = 3) -> dict[str, Any]:
    return {
        "observedGeneration": observed,
        "conditions": [
            {"type": "Validated", "status": "True", "reason": "ValidSpec"},
            {"type": "Ready", "status": status, "reason": reason, "message": message},
        ],
    }


@pytest.mark.parametrize("kind", KINDS)
def test_no_status_is_progressing(kind: str) -> None:
    assert health(resource(kind)) == ("Progressing", "Waiting for the natsflow operator to report status")


def test_stale_generation_is_progressing_even_when_ready() -> None:
    status, message = health(resource(generation=4, status=ready("True", "Synced", "", observed=3)))
    assert status == "Progressing"
    assert message == "Waiting for the operator to observe generation 4 (observed 3)"
    status, _ = health(resource(generation=4, status=ready("False", "InvalidBpmn", "bad", observed=3)))
    assert status == "Progressing", "a terminal error of an older spec says nothing about the new one"
    status, message = health(resource(status={"conditions": []}))
    assert (status, message) == (
        "Progressing",
        "Waiting for the operator to observe generation 3 (observed nil)",
    )


@pytest.mark.parametrize("kind", KINDS)
def test_ready_true_and_current_is_healthy(kind: str) -> None:
    status, message = health(resource(kind, status=ready("True", "Synced", "consumer and KV up to date")))
    assert status == "Healthy"
    assert message == "Synced: consumer and KV up to date"


@pytest.mark.parametrize("reason", TERMINAL)
def test_ready_false_with_terminal_reason_is_degraded(reason: str) -> None:
    status, message = health(resource(status=ready("False", reason, "line 12: flow without target")))
    assert (status, message) == ("Degraded", f"{reason}: line 12: flow without target")


@pytest.mark.parametrize("reason", RETRIED)
def test_ready_false_with_a_retried_reason_is_progressing(reason: str) -> None:
    status, message = health(
        resource(status=ready("False", reason, "ConfigMap tenant-a/orders does not exist"))
    )
    assert (status, message) == ("Progressing", f"{reason}: ConfigMap tenant-a/orders does not exist")


@pytest.mark.parametrize(
    ("reason", "message", "expected"),
    [
        ("NatsUnavailable", "connection refused", "NatsUnavailable: connection refused"),
        (
            "ValidationFailed",
            "not a reason of the operator",
            "ValidationFailed: not a reason of the operator",
        ),
        ("", "waiting for workers", "waiting for workers"),
        ("Reconciling", "", "Reconciling"),
        ("", "", "Ready=False"),
    ],
)
def test_ready_false_transient_is_progressing_with_the_message(
    reason: str, message: str, expected: str
) -> None:
    assert health(resource(status=ready("False", reason, message))) == ("Progressing", expected)


def test_ready_unknown_or_missing_is_progressing() -> None:
    assert health(resource(status=ready("Unknown", "Pending", "starting")))[0] == "Progressing"
    no_ready = {"observedGeneration": 3, "conditions": [{"type": "Validated", "status": "True"}]}
    assert health(resource(status=no_ready)) == ("Progressing", "Waiting for the Ready condition")


def _const(node: ast.expr) -> object:
    return node.value if isinstance(node, ast.Constant) else ...


def operator_failure_reasons() -> set[str]:
    """Every reason the operator's code can put on a failing part of ``Ready``.

    Reads operator/*.py: ``Cond(<part of Ready>, False|None, "<reason>", ...)``, the
    ``_invalid(kind, tenant, name, "<reason>", ...)`` helper and ``MissingReference("<reason>", ...)``
    (reported as ``Cond(..., exc.reason, ...)``). A failing condition whose reason is anything else
    fails the test, so a new reason cannot slip past the health check.
    """
    from natsflow_operator.conditions import READY_PARTS

    reasons: set[str] = set()
    files = sorted((ROOT / "operator" / "natsflow_operator").glob("*.py"))
    assert files
    for path in files:
        if path.name in ("cli.py", "manifests.py"):
            continue  # `natsflow apply`: prints outcomes, never writes a resource's status
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef) and node.name == "failure":  # (reason, message)
                for ret in ast.walk(node):
                    if isinstance(ret, ast.Return) and isinstance(ret.value, ast.Tuple):
                        assert isinstance(_const(ret.value.elts[0]), str), f"{path.name}:{ret.lineno}"
                        reasons.add(str(_const(ret.value.elts[0])))
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
                continue
            args, name = node.args, node.func.id
            if name == "Cond" and len(args) >= 3 and _const(args[0]) in READY_PARTS:
                if _const(args[1]) is True:
                    continue
                reason = args[2]
                if isinstance(reason, ast.Constant) and isinstance(reason.value, str):
                    reasons.add(reason.value)
                else:  # only the two pass-throughs collected below
                    text = ast.unparse(reason)
                    assert text in ("exc.reason", "reason"), f"{path.name}:{node.lineno}: reason {text}"
            elif name == "_invalid" and len(args) >= 4:
                assert isinstance(_const(args[3]), str), f"{path.name}:{node.lineno}"
                reasons.add(str(_const(args[3])))
            elif name == "MissingReference" and args:
                assert isinstance(_const(args[0]), str), f"{path.name}:{node.lineno}"
                reasons.add(str(_const(args[0])))
    return reasons


def test_every_reason_of_the_operator_is_classified() -> None:
    reasons = operator_failure_reasons()
    assert {"InvalidSpec", "ConfigMapNotFound", "DeploymentConflict"} <= reasons  # the scan finds them
    assert reasons == set(TERMINAL) | set(RETRIED), (
        f"unclassified: {sorted(reasons - set(TERMINAL) - set(RETRIED))}; "
        f"no longer emitted: {sorted(set(TERMINAL) | set(RETRIED) - reasons)}"
    )


def test_terminal_reasons_are_the_operators_stalled_ones() -> None:
    # the same split the operator's kstatus conditions make (Stalled vs Reconciling)
    from natsflow_operator.conditions import STALLED_REASONS

    assert set(TERMINAL) == STALLED_REASONS


def test_the_script_lists_exactly_the_terminal_reasons() -> None:
    table = re.search(r"local TERMINAL_REASONS = \{(.*?)\n\}", HEALTH_LUA, re.S)
    assert table
    assert set(re.findall(r"^\s*(\w+) = true", table.group(1), re.M)) == set(TERMINAL)


def test_the_doc_lists_exactly_the_terminal_reasons() -> None:
    page = (ROOT / "docs" / "argocd.md").read_text()
    row = next(line for line in page.splitlines() if line.startswith("| **Degraded** |"))
    assert set(re.findall(r"`(\w+)`", row)) - {"Ready"} == set(TERMINAL)
    progressing = next(line for line in page.splitlines() if line.startswith("| **Progressing** |"))
    assert set(RETRIED) <= set(re.findall(r"`(\w+)`", progressing))


def test_deleting_is_progressing() -> None:
    obj = resource(status=ready("True"))
    obj["metadata"]["deletionTimestamp"] = "2026-11-25T10:00:00Z"
    assert health(obj)[0] == "Progressing"


def test_the_harness_can_tell_a_broken_script() -> None:
    always_healthy = 'return { status = "Healthy", message = "" }'
    assert health(resource(), always_healthy)[0] == "Healthy"  # so the checks above are not vacuous
    with pytest.raises(lupa.LuaError):
        health(resource(), "return obj.status.conditions[1].type")


def test_argocd_cm_embeds_the_health_script_for_every_kind() -> None:
    cm = yaml.safe_load((ARGOCD / "argocd-cm.yaml").read_text())
    assert cm["kind"] == "ConfigMap" and cm["metadata"]["name"] == "argocd-cm"
    assert cm["data"] == {f"resource.customizations.health.natsflow.io_{k}": HEALTH_LUA for k in KINDS}


def load_apps() -> dict[str, dict[str, Any]]:
    apps = {}
    for path in [ARGOCD / "root-app.yaml", *sorted((ARGOCD / "apps").glob("*.yaml"))]:
        doc = yaml.safe_load(path.read_text())
        assert doc["apiVersion"] == "argoproj.io/v1alpha1" and doc["kind"] == "Application", path
        assert doc["spec"]["destination"]["server"] and doc["spec"]["source"]["repoURL"], path
        apps[doc["metadata"]["name"]] = doc
    return apps


def test_applications_order_crds_chart_workflows() -> None:
    apps = load_apps()
    wave = {
        name: int(a["metadata"].get("annotations", {}).get("argocd.argoproj.io/sync-wave", 0))
        for name, a in apps.items()
    }
    assert wave["natsflow-crds"] == -1 and wave["natsflow"] == 0 and wave["workflows-tenant-a"] == 1
    crds = apps["natsflow-crds"]["spec"]
    assert crds["source"]["path"] == "crds" and "ServerSideApply=true" in crds["syncPolicy"]["syncOptions"]
    assert crds["syncPolicy"]["automated"]["prune"] is False
    chart = apps["natsflow"]["spec"]
    assert chart["source"]["path"] == "charts/natsflow" and chart["source"]["helm"]["skipCrds"] is True
    values = chart["source"]["helm"]["valuesObject"]
    assert set(values) <= set(yaml.safe_load((ARGOCD.parents[1] / "charts/natsflow/values.yaml").read_text()))
    workflows = apps["workflows-tenant-a"]["spec"]
    assert workflows["ignoreDifferences"] == [
        {"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas"]}
    ]
    assert "RespectIgnoreDifferences=true" in workflows["syncPolicy"]["syncOptions"]
    assert apps["natsflow-root"]["spec"]["source"]["path"] == "deploy/argocd/apps"
