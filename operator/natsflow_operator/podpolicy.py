"""What a TaskDefinition may put into its worker pods, and the securityContext they always get.

Whoever may create a TaskDefinition makes the operator create pods. So ``podTemplate`` is an
allow-list (:func:`pod_template_problems`): scheduling, volumes of the kinds Pod Security
``restricted`` allows, and containers without host access. :func:`harden` then sets the
securityContext fields ``restricted`` requires (non-root, no privilege escalation, every
capability dropped, the runtime's default seccomp profile), whatever the template said.

A ServiceAccount is not part of the template: ``spec.serviceAccountName`` names it, and the
operator accepts only ServiceAccounts labelled :data:`WORKER_SA_LABEL` ``"true"``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["WORKER_SA_LABEL", "harden", "pod_template_problems"]

WORKER_SA_LABEL = "natsflow.io/worker"

POD_FIELDS = frozenset(
    {
        "containers",
        "initContainers",
        "volumes",
        "nodeSelector",
        "affinity",
        "tolerations",
        "topologySpreadConstraints",
        "priorityClassName",
        "terminationGracePeriodSeconds",
        "imagePullSecrets",
        "securityContext",
        "dnsConfig",
    }
)
CONTAINER_FIELDS = frozenset(
    {
        "name",
        "image",
        "imagePullPolicy",
        "command",
        "args",
        "workingDir",
        "env",
        "envFrom",
        "resources",
        "ports",
        "volumeMounts",
        "livenessProbe",
        "readinessProbe",
        "startupProbe",
        "lifecycle",
        "terminationMessagePath",
        "terminationMessagePolicy",
        "securityContext",
    }
)
VOLUME_SOURCES = frozenset(
    {
        "configMap",
        "secret",
        "emptyDir",
        "projected",
        "downwardAPI",
        "persistentVolumeClaim",
        "ephemeral",
        "csi",
    }
)
"""The volume types Pod Security ``restricted`` allows."""
POD_SECURITY_FIELDS = frozenset({"runAsUser", "runAsGroup", "fsGroup", "supplementalGroups"})
CONTAINER_SECURITY_FIELDS = frozenset({"runAsUser", "runAsGroup", "readOnlyRootFilesystem"})
RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}
RESTRICTED_POD = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}


def _extra(obj: Mapping[str, Any], allowed: Iterable[str], where: str) -> list[str]:
    allowed = set(allowed)
    return [f"{where}.{key} is not allowed" for key in obj if key not in allowed]


def _security(ctx: Any, allowed: frozenset[str], where: str) -> list[str]:
    if ctx is None:
        return []
    if not isinstance(ctx, dict):
        return [f"{where} must be an object"]
    problems = _extra(ctx, allowed, where)
    if ctx.get("runAsUser") == 0:
        problems.append(f"{where}.runAsUser must not be 0 (root)")
    return problems


def _containers(items: Any, where: str) -> list[str]:
    if items is None:
        return []
    if not isinstance(items, list) or not all(isinstance(c, dict) for c in items):
        return [f"{where} must be a list of objects"]
    problems: list[str] = []
    for i, container in enumerate(items):
        at = f"{where}[{i}]"
        problems += _extra(container, CONTAINER_FIELDS, at)
        problems += _security(
            container.get("securityContext"), CONTAINER_SECURITY_FIELDS, f"{at}.securityContext"
        )
        for port in container.get("ports") or []:
            if isinstance(port, dict) and port.get("hostPort"):
                problems.append(f"{at}.ports.hostPort is not allowed")
    return problems


def pod_template_problems(template: Mapping[str, Any]) -> list[str]:
    """Every field of ``template`` outside the allow-list, as ``path is not allowed``."""
    problems = _extra(template, ("metadata", "spec"), "podTemplate")
    metadata = template.get("metadata") or {}
    if not isinstance(metadata, dict):
        return [*problems, "podTemplate.metadata must be an object"]
    problems += _extra(metadata, ("labels", "annotations"), "metadata")
    spec = template.get("spec") or {}
    if not isinstance(spec, dict):
        return [*problems, "podTemplate.spec must be an object"]
    problems += _extra(spec, POD_FIELDS, "spec")
    problems += _security(spec.get("securityContext"), POD_SECURITY_FIELDS, "spec.securityContext")
    problems += _containers(spec.get("containers"), "spec.containers")
    problems += _containers(spec.get("initContainers"), "spec.initContainers")
    volumes = spec.get("volumes") or []
    if not isinstance(volumes, list) or not all(isinstance(v, dict) for v in volumes):
        return [*problems, "spec.volumes must be a list of objects"]
    for i, volume in enumerate(volumes):
        problems += _extra(volume, {"name", *VOLUME_SOURCES}, f"spec.volumes[{i}]")
    return problems


def harden(pod: dict[str, Any]) -> None:
    """Set the securityContext fields Pod Security ``restricted`` requires, in place."""
    pod["securityContext"] = {**(pod.get("securityContext") or {}), **copy.deepcopy(RESTRICTED_POD)}
    for key in ("containers", "initContainers"):
        for container in pod.get(key) or []:
            ours = copy.deepcopy(RESTRICTED_CONTAINER)
            container["securityContext"] = {**(container.get("securityContext") or {}), **ours}
