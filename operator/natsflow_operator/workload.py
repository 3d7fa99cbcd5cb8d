"""The worker Deployment of a TaskDefinition, as a pure function of the spec.

The worker container runs the image with ``worker <module>`` (unless ``args`` or a
``podTemplate`` say otherwise) and learns where to work from its environment:

``NATS_URL``            server URL(s) (from the ``natsRef`` Secret's ``url`` key, or the default)
``NATS_CREDS``          path of the mounted credentials file, when the Secret has ``creds``
``NATSFLOW_TENANT``     the namespace
``NATSFLOW_TASK_TYPE``  the task type

A hash of the rendered pod template is kept in an annotation, so the operator patches the
Deployment only when the spec changed (or when someone changed the template behind its back).
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from natsflow_operator.models import TaskDefinitionSpec

__all__ = [
    "CREDS_DIR",
    "HASH_ANNOTATION",
    "NatsEnv",
    "build_deployment",
    "deployment_name",
    "selector_labels",
]

HASH_ANNOTATION = "natsflow.io/template-hash"
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


def build_deployment(
    namespace: str, name: str, spec: TaskDefinitionSpec, nats: NatsEnv, *, replicas: int | None
) -> dict[str, Any]:
    """The Deployment manifest; ``replicas=None`` leaves the count out (the autoscaler owns it)."""
    template = _pod_template(namespace, name, spec, nats)
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:16]
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
