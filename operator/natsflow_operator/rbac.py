"""The Kubernetes permissions the operator uses, and nothing more: the single source.

The operator tests check every API call the operator makes against these rules (so a missing
rule fails a test), and list the calls with ``NATSFLOW_RBAC_DUMP=file``.

``python -m natsflow_operator.crdgen`` renders them into ``operator/natsflow_operator/rbac.yaml`` (a ClusterRole);
the Helm chart copies the same rules. When a handler starts calling a new API, add the rule
here and regenerate.
"""

from __future__ import annotations

from typing import Any

from natsflow_operator.kinds import KINDS
from natsflow_operator.models import GROUP

__all__ = ["CLUSTER_ROLE_NAME", "RULES", "cluster_role"]

CLUSTER_ROLE_NAME = "natsflow-operator"

_PLURALS = sorted(info.plural for info in KINDS.values() if info.namespaced)
_CLUSTER_PLURALS = sorted(info.plural for info in KINDS.values() if not info.namespaced)

RULES: list[dict[str, Any]] = [
    {
        # Kopf discovers which custom resources exist by watching the CRDs.
        "apiGroups": ["apiextensions.k8s.io"],
        "resources": ["customresourcedefinitions"],
        "verbs": ["list", "watch"],
    },
    {
        # Kopf watches namespaces only when serving glob patterns (-n 'team-*').
        "apiGroups": [""],
        "resources": ["namespaces"],
        "verbs": ["list", "watch"],
    },
    {
        # Our resources: watched; patched for the finalizer and Kopf's progress annotations;
        # a Trigger's workflowRef.name and a Workflow's deletion read Workflows.
        "apiGroups": [GROUP],
        "resources": _PLURALS,
        "verbs": ["get", "list", "watch", "patch"],
    },
    {
        # Conditions, observedGeneration and the autoscaler's fields.
        "apiGroups": [GROUP],
        "resources": [f"{plural}/status" for plural in _PLURALS],
        "verbs": ["patch"],
    },
    {
        # Tenants (cluster-scoped, so a rule of their own: a namespaced Role cannot grant them).
        "apiGroups": [GROUP],
        "resources": _CLUSTER_PLURALS,
        "verbs": ["get", "list", "watch", "patch"],
    },
    {
        "apiGroups": [GROUP],
        "resources": [f"{plural}/status" for plural in _CLUSTER_PLURALS],
        "verbs": ["patch"],
    },
    {
        # The worker Deployment's and the site Secrets' owner references set blockOwnerDeletion,
        # which the API server allows only to who may update the owner's finalizers
        # (OwnerReferencesPermissionEnforcement).
        "apiGroups": [GROUP],
        "resources": ["taskdefinitions/finalizers"],
        "verbs": ["update"],
    },
    {
        # The same for the site Secrets owned by a Tenant (cluster-scoped, so a rule of its own).
        "apiGroups": [GROUP],
        "resources": ["tenants/finalizers"],
        "verbs": ["update"],
    },
    {
        # spec.natsRef (url, creds) and spec.bpmnFrom.configMapKeyRef.
        "apiGroups": [""],
        "resources": ["secrets", "configmaps"],
        "verbs": ["get"],
    },
    {
        # With Tenants: the account keys and the platform credentials (platform namespace), the
        # worker credentials of each TaskDefinition (tenant namespaces). Never listed.
        "apiGroups": [""],
        "resources": ["secrets"],
        "verbs": ["create", "patch", "delete"],
    },
    {
        # spec.serviceAccountName must name a ServiceAccount labelled natsflow.io/worker=true.
        "apiGroups": [""],
        "resources": ["serviceaccounts"],
        "verbs": ["get"],
    },
    {
        # Worker Deployments of TaskDefinitions (deleted by the operator only when the image goes).
        "apiGroups": ["apps"],
        "resources": ["deployments"],
        "verbs": ["get", "create", "patch", "delete"],
    },
    {
        # The autoscaler sets replicas through the scale subresource.
        "apiGroups": ["apps"],
        "resources": ["deployments/scale"],
        "verbs": ["patch"],
    },
    {
        # kopf.info / kopf.warn on our objects.
        "apiGroups": [""],
        "resources": ["events"],
        "verbs": ["create"],
    },
]


def cluster_role() -> dict[str, Any]:
    """The ClusterRole holding :data:`RULES`."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": CLUSTER_ROLE_NAME, "labels": {"app.kubernetes.io/part-of": "natsflow"}},
        "rules": RULES,
    }
