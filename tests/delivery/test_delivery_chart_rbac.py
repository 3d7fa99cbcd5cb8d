"""The operator's RBAC is exactly the agreed least-privilege list, cluster-wide or per watched namespace."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Manifest = dict[str, Any]
Render = Callable[..., list[Manifest]]
Grant = tuple[str, str, str]  # (apiGroup, resource, verb)

FULLNAME = "flow-natsflow"
NAMESPACE = "natsflow-system"
SERVICE_ACCOUNT = {"kind": "ServiceAccount", "name": f"{FULLNAME}-operator", "namespace": NAMESPACE}


def grants(group: str, resources: list[str], verbs: list[str]) -> set[Grant]:
    return {(group, r, v) for r in resources for v in verbs}


CRS = ["workflows", "taskdefinitions", "triggers"]
NAMESPACED: set[Grant] = (
    grants("natsflow.io", CRS, ["get", "list", "watch", "patch", "update"])
    | grants("natsflow.io", [f"{r}/status" for r in CRS], ["patch", "update"])
    | grants("apps", ["deployments"], ["get", "list", "watch", "create", "patch", "update", "delete"])
    | grants("apps", ["deployments/scale"], ["get", "patch", "update"])
    | grants("", ["events"], ["create", "patch"])
    | grants("", ["configmaps"], ["get", "list", "watch"])
    | grants("", ["secrets"], ["get"])
    | grants("events.k8s.io", ["events"], ["create"])
)
CLUSTER_SCOPED: set[Grant] = grants("", ["namespaces"], ["list", "watch"]) | grants(
    "apiextensions.k8s.io", ["customresourcedefinitions"], ["list", "watch"]
)
EXPECTED = NAMESPACED | CLUSTER_SCOPED


def flatten(rules: list[Manifest]) -> set[Grant]:
    out: set[Grant] = set()
    for rule in rules:
        assert set(rule) <= {"apiGroups", "resources", "verbs"}, f"unexpected rule fields: {rule}"
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    assert "*" not in (group, resource, verb), f"wildcard in {rule}"
                    out.add((group, resource, verb))
    return out


def of_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def test_the_expected_list_is_what_the_issue_asks() -> None:
    # Guards the constant itself: 10 rule lines of the issue, 42 single grants.
    assert len(EXPECTED) == 15 + 6 + 7 + 3 + 2 + 3 + 1 + 1 + 2 + 2
    assert ("", "secrets", "list") not in EXPECTED and ("", "secrets", "get") in EXPECTED


def test_cluster_wide_operator_gets_exactly_the_list(render: Render) -> None:
    manifests = render()
    (role,) = of_kind(manifests, "ClusterRole")
    assert flatten(role["rules"]) == EXPECTED
    (binding,) = of_kind(manifests, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [SERVICE_ACCOUNT]
    assert not of_kind(manifests, "Role") and not of_kind(manifests, "RoleBinding")
    # Two releases in two namespaces must not fight over one ClusterRole.
    assert NAMESPACE in role["metadata"]["name"]


def test_namespaced_operator_gets_roles_per_tenant(render: Render) -> None:
    tenants = ["tenant-a", "tenant-b"]
    manifests = render({"operator": {"watchNamespaces": tenants}})
    (cluster_role,) = of_kind(manifests, "ClusterRole")
    assert flatten(cluster_role["rules"]) == CLUSTER_SCOPED
    roles = of_kind(manifests, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == tenants
    for role in roles:
        assert flatten(role["rules"]) == NAMESPACED
    bindings = of_kind(manifests, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == tenants
    for b in bindings:
        assert b["roleRef"]["kind"] == "Role" and b["roleRef"]["name"] == roles[0]["metadata"]["name"]
        assert b["subjects"] == [SERVICE_ACCOUNT]
    assert flatten(cluster_role["rules"]) | flatten(roles[0]["rules"]) == EXPECTED
    operator = next(
        d for d in of_kind(manifests, "Deployment") if d["metadata"]["name"] == f"{FULLNAME}-operator"
    )
    args = operator["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args == ["operator", "--namespace", "tenant-a", "--namespace", "tenant-b"]


def test_no_rbac_without_operator(render: Render) -> None:
    manifests = render({"operator": {"enabled": False}})
    for kind in ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"):
        assert not of_kind(manifests, kind), kind
