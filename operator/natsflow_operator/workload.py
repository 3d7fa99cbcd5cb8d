"""The worker Deployment of a TaskDefinition, as a pure function of the spec.

The worker container runs the image with ``worker <module>`` (unless ``args`` or a
``podTemplate`` say otherwise) and learns where to work from its environment:

``NATS_URL``            server URL(s) (from the ``natsRef`` Secret's ``url`` key, or the default)
``NATS_CREDS``          path of the mounted credentials file, when the Secret has ``creds``
``NATS_INBOX_PREFIX``   with Tenant accounts: the only inbox prefix the workers' user may use
``NATSFLOW_TENANT``     the namespace
``NATSFLOW_TASK_TYPE``  the task type

Two hashes are kept in annotations: :data:`HASH_ANNOTATION` of the template the operator
renders from the spec (did the spec change?) and :data:`APPLIED_ANNOTATION` of the template as
the API server stored it, defaults included (did someone edit the Deployment behind the
operator's back?). ``kubectl rollout restart`` is not an edit: its annotation is left out of
the comparison and kept when the operator patches the template.

Pods always get the securityContext of :func:`natsflow_operator.podpolicy.harden` and no
Kubernetes API token unless ``serviceAccountName`` is set.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from natsflow_operator.models import TaskDefinitionSpec
from natsflow_operator.podpolicy import harden

__all__ = [
    "APPLIED_ANNOTATION",
    "CREDS_DIR",
    "RESTARTED_AT",
    "HASH_ANNOTATION",
    "NatsEnv",
    "build_deployment",
    "deployment_name",
    "selector_labels",
    "stored_hash",
    "template_hash",
]

HASH_ANNOTATION = "natsflow.io/template-hash"
APPLIED_ANNOTATION = "natsflow.io/applied-template-hash"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
CREDS_DIR = "/etc/natsflow/nats"
CREDS_FILE = "nats.creds"


@dataclass(frozen=True)
class NatsEnv:
    """How the workers reach NATS: a literal URL or a Secret key, and an optional creds Secret."""

    url: str | None = None
    url_secret: str | None = None
    """Secret with the key ``url`` (takes precedence over ``url``)."""
    creds_secret: str | None = None
    """Secret with the key ``creds`` to mount as ``NATS_CREDS``."""
    inbox_prefix: str | None = None
    """``NATS_INBOX_PREFIX``: where the workers' user may receive replies (tenant accounts)."""
    tenant_account: bool = False
    """The connection is the tenant's own account: the workers get a user of their own."""


def deployment_name(name: str) -> str:
    return f"{name}-worker"


def selector_labels(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "natsflow-worker", "app.kubernetes.io/instance": name}


def _env(namespace: str, spec: TaskDefinitionSpec, nats: NatsEnv) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = []
    if nats.url_secret:
        env.append(
            {"name": "NATS_URL", "valueFrom": {"secretKeyRef": {"name": nats.url_secret, "key": "url"}}}
        )
    elif nats.url:
        env.append({"name": "NATS_URL", "value": nats.url})
    if nats.creds_secret:
        env.append({"name": "NATS_CREDS", "value": f"{CREDS_DIR}/{CREDS_FILE}"})
    if nats.inbox_prefix:
        env.append({"name": "NATS_INBOX_PREFIX", "value": nats.inbox_prefix})
    env.append({"name": "NATSFLOW_TENANT", "value": namespace})
    env.append({"name": "NATSFLOW_TASK_TYPE", "value": spec.task_type})
    ours = {e["name"] for e in env}
    env.extend(e.model_dump(by_alias=True, exclude_none=True) for e in spec.env if e.name not in ours)
    return env


def _container(template_spec: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = template_spec.setdefault("containers", [])
    for container in containers:
        if container.get("name") == "worker":
            return container
    if containers:
        return containers[0]
    containers.append({"name": "worker"})
    return containers[0]


def _pod_template(namespace: str, name: str, spec: TaskDefinitionSpec, nats: NatsEnv) -> dict[str, Any]:
    template: dict[str, Any] = copy.deepcopy(spec.pod_template) if spec.pod_template else {}
    metadata = template.setdefault("metadata", {})
    metadata.setdefault("labels", {}).update(selector_labels(name))
    pod = template.setdefault("spec", {})
    container = _container(pod)
    if spec.image:
        container["image"] = spec.image
    if spec.image_pull_policy:
        container["imagePullPolicy"] = spec.image_pull_policy
    if spec.command is not None:
        container["command"] = list(spec.command)
    if spec.args is not None:
        container["args"] = list(spec.args)
    elif spec.module and "args" not in container:
        container["args"] = ["worker", spec.module]
    if spec.resources is not None:
        container["resources"] = copy.deepcopy(spec.resources)
    ours = _env(namespace, spec, nats)
    names = {e["name"] for e in ours}
    container["env"] = ours + [e for e in container.get("env", []) if e.get("name") not in names]
    if spec.service_account_name:
        pod["serviceAccountName"] = spec.service_account_name
    else:
        pod["automountServiceAccountToken"] = False  # workers talk to NATS, not to Kubernetes
    harden(pod)
    if nats.creds_secret:
        pod.setdefault("volumes", []).append(
            {
                "name": "nats-creds",
                "secret": {"secretName": nats.creds_secret, "items": [{"key": "creds", "path": CREDS_FILE}]},
            }
        )
        container.setdefault("volumeMounts", []).append(
            {"name": "nats-creds", "mountPath": CREDS_DIR, "readOnly": True}
        )
    return template


def template_hash(template: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:16]


def stored_hash(deployment: dict[str, Any]) -> str:
    """Hash of a Deployment's pod template as stored, without ``kubectl rollout restart``'s mark."""
    template = copy.deepcopy((deployment.get("spec") or {}).get("template") or {})
    ((template.get("metadata") or {}).get("annotations") or {}).pop(RESTARTED_AT, None)
    return template_hash(template)


def build_deployment(
    namespace: str, name: str, spec: TaskDefinitionSpec, nats: NatsEnv, *, replicas: int | None
) -> dict[str, Any]:
    """The Deployment manifest; ``replicas=None`` leaves the count out (the autoscaler owns it)."""
    template = _pod_template(namespace, name, spec, nats)
    digest = template_hash(template)
    labels = {
        **selector_labels(name),
        "app.kubernetes.io/component": "worker",
        "app.kubernetes.io/managed-by": "natsflow-operator",
        "natsflow.io/taskdefinition": name,
    }
    body: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": deployment_name(name),
            "namespace": namespace,
            "labels": labels,
            "annotations": {HASH_ANNOTATION: digest, "natsflow.io/task-type": spec.task_type},
        },
        "spec": {"selector": {"matchLabels": selector_labels(name)}, "template": template},
    }
    if replicas is not None:
        body["spec"]["replicas"] = replicas
    return body
