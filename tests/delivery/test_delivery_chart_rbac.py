"""The operator's RBAC in the chart is exactly ``operator/natsflow_operator/rbac.py:RULES``, cluster-wide or per watched namespace.

``RULES`` is the single source: the operator tests check every API call the operator makes
against it. The chart writes the same rules out by hand (Helm cannot import Python), so these
tests compare the rendered ClusterRole/Role rules with ``RULES``, grant by grant, in both modes.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from natsflow_operator.rbac import RULES

Manifest = dict[str, Any]
Render = Callable[..., list[Manifest]]
Grant = tuple[str, str, str]  # (apiGroup, resource, verb)

FULLNAME = "flow-natsflow"
NAMESPACE = "natsflow-system"
SERVICE_ACCOUNT = {"kind": "ServiceAccount", "name": f"{FULLNAME}-operator", "namespace": NAMESPACE}

# Resources without a namespace: a Role cannot grant them, so with watchNamespaces they stay in
# the release's ClusterRole. Every other resource in RULES is namespaced.
CLUSTER_SCOPED_RESOURCES = {
    ("", "namespaces"),
    ("apiextensions.k8s.io", "customresourcedefinitions"),
    ("natsflow.io", "tenants"),
    ("natsflow.io", "tenants/status"),
    ("natsflow.io", "tenants/finalizers"),
}


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


def is_cluster_scoped(grant: Grant) -> bool:
    return (grant[0], grant[1]) in CLUSTER_SCOPED_RESOURCES


EXPECTED: set[Grant] = flatten(RULES)
CLUSTER_SCOPED: set[Grant] = {g for g in EXPECTED if is_cluster_scoped(g)}
NAMESPACED: set[Grant] = EXPECTED - CLUSTER_SCOPED


def assert_same_grants(rendered: list[Manifest], expected: set[Grant], what: str) -> None:
    """The rendered rules grant exactly ``expected``: nothing missing, nothing extra."""
    actual = flatten(rendered)
    missing, extra = sorted(expected - actual), sorted(actual - expected)
    assert not missing and not extra, (
        f"{what} differs from operator/natsflow_operator/rbac.py RULES (change charts/natsflow/templates/operator-rbac.yaml):"
        f"\n  missing: {missing}\n  extra:   {extra}"
    )


def of_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def test_rules_split_cleanly_by_scope() -> None:
    # The split used for watchNamespaces: each rule of RULES is wholly cluster-scoped or namespaced,
    # both parts are non-empty, and the scope list names only resources RULES grants.
    for rule in RULES:
        scopes = {is_cluster_scoped(g) for g in flatten([rule])}
        assert len(scopes) == 1, f"rule mixes cluster-scoped and namespaced resources: {rule}"
    assert CLUSTER_SCOPED and NAMESPACED
    assert {(g, r) for g, r, _ in CLUSTER_SCOPED} == CLUSTER_SCOPED_RESOURCES
    # Least privilege the chart must not widen: Secrets are read one by one, never listed.
    assert ("", "secrets", "get") in EXPECTED and ("", "secrets", "list") not in EXPECTED


def test_the_comparison_detects_a_difference(render: Render) -> None:
    # Guards the check itself: the rendered chart passes, and any widening or narrowing fails.
    (role,) = of_kind(render(), "ClusterRole")
    assert_same_grants(role["rules"], EXPECTED, "ClusterRole")

    extra_verb = copy.deepcopy(role["rules"])
    extra_verb[0]["verbs"].append("update")
    with pytest.raises(AssertionError, match="extra"):
        assert_same_grants(extra_verb, EXPECTED, "ClusterRole")

    extra_resource = copy.deepcopy(role["rules"])
    next(r for r in extra_resource if "secrets" in r["resources"])["verbs"].append("list")
    with pytest.raises(AssertionError, match=r"'secrets', 'list'"):
        assert_same_grants(extra_resource, EXPECTED, "ClusterRole")

    with pytest.raises(AssertionError, match="missing"):
        assert_same_grants(role["rules"][1:], EXPECTED, "ClusterRole")

    with pytest.raises(AssertionError, match="wildcard"):
        assert_same_grants(
            [*role["rules"], {"apiGroups": ["apps"], "resources": ["*"], "verbs": ["get"]}], EXPECTED, "x"
        )

    with pytest.raises(AssertionError, match="unexpected rule fields"):
        named = copy.deepcopy(role["rules"])
        named[0]["resourceNames"] = ["x"]
        assert_same_grants(named, EXPECTED, "x")


def test_cluster_wide_operator_gets_exactly_the_rules(render: Render) -> None:
    manifests = render()
    (role,) = of_kind(manifests, "ClusterRole")
    assert_same_grants(role["rules"], EXPECTED, "ClusterRole")
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
    assert_same_grants(cluster_role["rules"], CLUSTER_SCOPED, "ClusterRole (watchNamespaces)")
    roles = of_kind(manifests, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == tenants
    for role in roles:
        assert_same_grants(role["rules"], NAMESPACED, f"Role in {role['metadata']['namespace']}")
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
