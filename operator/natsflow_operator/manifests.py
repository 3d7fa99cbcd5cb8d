"""Apply or delete custom-resource manifests straight to NATS, without Kubernetes.

The second front door of :mod:`natsflow_operator.reconcile`: ``natsflow apply -f FILE|DIR`` and
``natsflow delete -f FILE|DIR`` read multi-document YAML (``kind: List`` too), validate each
Workflow, TaskDefinition and Trigger with the same models as the CRDs, and reconcile it into
NATS. No Deployments, no autoscaling; ConfigMaps in the same files serve ``bpmnFrom``; other
kinds are skipped. Imports neither Kopf nor a Kubernetes client.

Without a cluster, what a Workflow applied before is read from NATS: the processes whose
``latest`` pointer names it. Applying it again undeploys the ones that left its document.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from natsflow_engine import layout
from natsflow_engine.errors import BpmnValidationError
from natsflow_engine.runtime.definitions import parse_and_check
from pydantic import BaseModel, ValidationError

from natsflow_operator import reconcile
from natsflow_operator.conditions import Cond, Outcome
from natsflow_operator.connections import NatsHandle
from natsflow_operator.models import (
    API_VERSION,
    ConfigMapKeyRef,
    TaskDefinitionSpec,
    TriggerSpec,
    WorkflowSpec,
    describe_errors,
)
from natsflow_operator.workflow_parts import FormSource, process_retention

__all__ = ["Manifest", "apply_manifests", "delete_manifests", "load_manifests"]

log = logging.getLogger(__name__)

_SPECS: dict[str, type[BaseModel]] = {
    "Workflow": WorkflowSpec,
    "TaskDefinition": TaskDefinitionSpec,
    "Trigger": TriggerSpec,
}
_ORDER = ("Workflow", "TaskDefinition", "Trigger")  # processes exist before their triggers


@dataclass(frozen=True)
class Manifest:
    """One document of a manifest file."""

    origin: str
    kind: str
    api_version: str
    namespace: str | None
    name: str
    body: dict[str, Any]

    @property
    def ours(self) -> bool:
        return self.api_version == API_VERSION and self.kind in _SPECS


def _files(paths: Iterable[Path], recursive: bool) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            found.extend(sorted(p for p in path.glob(pattern) if p.suffix in (".yaml", ".yml", ".json")))
        else:
            found.append(path)
    return found


def load_manifests(paths: Iterable[Path], *, recursive: bool = False) -> list[Manifest]:
    """Every document of every file (directories: their ``*.yaml``, ``*.yml``, ``*.json``)."""
    manifests: list[Manifest] = []
    for file in _files(paths, recursive):
        for index, doc in enumerate(yaml.safe_load_all(file.read_text(encoding="utf-8"))):
            items = doc.get("items", []) if isinstance(doc, dict) and doc.get("kind") == "List" else [doc]
            for item in items:
                if not isinstance(item, dict):
                    continue
                meta = item.get("metadata") or {}
                manifests.append(
                    Manifest(
                        origin=f"{file}#{index}",
                        kind=str(item.get("kind", "")),
                        api_version=str(item.get("apiVersion", "")),
                        namespace=meta.get("namespace"),
                        name=str(meta.get("name", "")),
                        body=item,
                    )
                )
    return manifests


def _sorted(manifests: Sequence[Manifest], reverse: bool = False) -> list[Manifest]:
    ours = [m for m in manifests if m.ours]
    ours.sort(key=lambda m: _ORDER.index(m.kind), reverse=reverse)
    return ours


def _config_map_value(
    ref: ConfigMapKeyRef, tenant: str, configmaps: dict[tuple[str, str], dict[str, Any]]
) -> str:
    data = configmaps.get((tenant, ref.name))
    if data is None or ref.key not in data:
        raise LookupError(f"ConfigMap {tenant}/{ref.name} key {ref.key!r} is not in the given files")
    return str(data[ref.key])


def _sources(
    spec: WorkflowSpec, tenant: str, configmaps: dict[tuple[str, str], dict[str, Any]]
) -> tuple[str, list[FormSource]]:
    """The BPMN and the forms of a Workflow, from the spec or the given ConfigMaps."""
    forms = [FormSource(f"forms[{i}]", text) for i, text in enumerate(spec.forms)]
    for source in spec.forms_from:
        ref = source.config_map_key_ref
        text = _config_map_value(ref, tenant, configmaps)
        forms.append(FormSource(f"ConfigMap {tenant}/{ref.name} key {ref.key}", text))
    return _bpmn(spec, tenant, configmaps), forms


def _bpmn(spec: WorkflowSpec, tenant: str, configmaps: dict[tuple[str, str], dict[str, Any]]) -> str:
    if spec.bpmn is not None:
        return spec.bpmn
    assert spec.bpmn_from is not None
    return _config_map_value(spec.bpmn_from.config_map_key_ref, tenant, configmaps)


async def _apply_one(
    h: NatsHandle, m: Manifest, tenant: str, configmaps: dict[tuple[str, str], dict[str, Any]]
) -> Outcome:
    try:
        spec = _SPECS[m.kind].model_validate(m.body.get("spec") or {}, context={"name": m.name})
    except ValidationError as exc:
        return Outcome(
            m.kind, tenant, m.name, "invalid", [Cond("Validated", False, "InvalidSpec", describe_errors(exc))]
        )
    generation = (m.body.get("metadata") or {}).get("generation")
    if isinstance(spec, WorkflowSpec):
        try:
            source, forms = _sources(spec, tenant, configmaps)
        except LookupError as exc:
            return Outcome(
                m.kind, tenant, m.name, "invalid", [Cond("Validated", False, "SourceNotFound", str(exc))]
            )
        # what this Workflow deployed before is what the latest pointers name it for: a process
        # that left its document (a processId renamed) is undeployed, its versions stay
        previous = await reconcile.processes_of(h, tenant, m.name)
        return await reconcile.apply_workflow(
            h,
            tenant,
            m.name,
            source,
            previous=previous,
            prune=spec.deletion_policy == "Delete",
            forms=forms,
            retention=process_retention(spec.retention),
        )
    if isinstance(spec, TaskDefinitionSpec):
        return await reconcile.apply_taskdefinition(h, tenant, m.name, spec, generation=generation)
    assert isinstance(spec, TriggerSpec)
    process_id = None
    if spec.workflow_ref.name:  # the Workflows of this run were applied first (_sorted)
        process_id, problem = spec.workflow_ref.pick(
            await reconcile.processes_of(h, tenant, spec.workflow_ref.name)
        )
        if process_id is None:
            message = f"Workflow {spec.workflow_ref.name!r}: {problem} (deployed: apply it first)"
            return Outcome(m.kind, tenant, m.name, "invalid", [Cond("Validated", False, problem, message)])
    return await reconcile.apply_trigger(
        h, tenant, m.name, spec, generation=generation, process_id=process_id
    )


def _tenant(m: Manifest, default: str) -> str:
    return m.namespace or default


def _configmaps(manifests: Sequence[Manifest], default_tenant: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (_tenant(m, default_tenant), m.name): dict(m.body.get("data") or {})
        for m in manifests
        if m.kind == "ConfigMap" and m.api_version == "v1"
    }


async def apply_manifests(
    h: NatsHandle, manifests: Sequence[Manifest], *, tenant: str = layout.DEFAULT_TENANT
) -> list[Outcome]:
    """Apply every natsflow object (Workflows first, Triggers last); others are skipped."""
    configmaps = _configmaps(manifests, tenant)
    outcomes = [await _apply_one(h, m, _tenant(m, tenant), configmaps) for m in _sorted(manifests)]
    outcomes += [Outcome(m.kind, _tenant(m, tenant), m.name, "skipped") for m in manifests if not m.ours]
    return outcomes


async def _delete_one(
    h: NatsHandle, m: Manifest, tenant: str, configmaps: dict[tuple[str, str], dict[str, Any]]
) -> Outcome:
    try:
        spec = _SPECS[m.kind].model_validate(m.body.get("spec") or {}, context={"name": m.name})
    except ValidationError as exc:
        return Outcome(
            m.kind, tenant, m.name, "invalid", [Cond("Validated", False, "InvalidSpec", describe_errors(exc))]
        )
    if getattr(spec, "deletion_policy", "Delete") == "Retain":
        return Outcome(m.kind, tenant, m.name, "retained")
    if isinstance(spec, WorkflowSpec):
        try:
            defs = parse_and_check(_bpmn(spec, tenant, configmaps), name=m.name)
        except (LookupError, BpmnValidationError) as exc:
            return Outcome(
                m.kind, tenant, m.name, "invalid", [Cond("Validated", False, "InvalidBpmn", str(exc))]
            )
        ids = [p.id for p in defs.processes.values() if p.executable]
        return await reconcile.delete_workflow(h, tenant, m.name, ids, owner_only=True)
    if isinstance(spec, TaskDefinitionSpec):
        return await reconcile.delete_taskdefinition(h, tenant, m.name, spec.task_type)
    return await reconcile.delete_trigger(h, tenant, m.name, None)


async def delete_manifests(
    h: NatsHandle, manifests: Sequence[Manifest], *, tenant: str = layout.DEFAULT_TENANT
) -> list[Outcome]:
    """Delete every natsflow object (Triggers first), honouring ``deletionPolicy: Retain``."""
    configmaps = _configmaps(manifests, tenant)
    outcomes = [
        await _delete_one(h, m, _tenant(m, tenant), configmaps) for m in _sorted(manifests, reverse=True)
    ]
    outcomes += [Outcome(m.kind, _tenant(m, tenant), m.name, "skipped") for m in manifests if not m.ours]
    return outcomes
