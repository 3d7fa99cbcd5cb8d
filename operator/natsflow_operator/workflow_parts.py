"""What a Workflow deploys beside its processes: its forms and its processes' retention.

Forms (``spec.forms`` inline, ``spec.formsFrom`` from ConfigMaps) are checked all before
anything is deployed, so a bad one leaves NATS as it was and names itself in the condition
(``InvalidForm``); they deploy like the API's forms (one record per form id, a new version on new
content) and stay when the Workflow goes, since user tasks in flight name them. Retention
(``spec.retention``) is kept in each process's ``latest`` pointer, where every engine replica
reads it (:class:`~natsflow_engine.runtime.definitions.ProcessRetention`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from nats.js.kv import KeyValue
from natsflow_engine.errors import InvalidInputError
from natsflow_engine.runtime.definitions import ProcessRetention, set_retention
from natsflow_engine.runtime.forms import deploy_form, parse_form

from natsflow_operator.models import WorkflowRetention

__all__ = ["CheckedForm", "FormSource", "apply_retention", "check_forms", "deploy_forms", "process_retention"]


@dataclass(frozen=True)
class FormSource:
    """A form document and where it came from (``forms[0]``, ``ConfigMap ns/name key k``)."""

    where: str
    text: str


@dataclass(frozen=True)
class CheckedForm:
    form_id: str
    text: str


def check_forms(forms: Sequence[FormSource]) -> list[CheckedForm]:
    """Every form parsed, ids distinct; :class:`InvalidInputError` names the first bad one."""
    checked: list[CheckedForm] = []
    seen: dict[str, str] = {}
    for form in forms:
        form_id, _ = parse_form(form.text, form.where)
        if form_id in seen:
            raise InvalidInputError(f"{form.where}: form id {form_id!r} is also the id of {seen[form_id]}")
        seen[form_id] = form.where
        checked.append(CheckedForm(form_id, form.text))
    return checked


async def deploy_forms(
    kv: KeyValue, tenant: str, name: str, forms: Sequence[CheckedForm]
) -> tuple[list[dict[str, object]], bool]:
    """Deploy checked forms; (their status entries, whether any got a new version)."""
    entries: list[dict[str, object]] = []
    created = False
    for form in forms:
        done = await deploy_form(kv, tenant, form.text, name=name)
        entries.append({"formId": done.form_id, "version": done.version})
        created = created or done.created
    return entries, created


def process_retention(spec: WorkflowRetention | None) -> ProcessRetention | None:
    if spec is None:
        return None
    live, archive = spec.seconds()
    return ProcessRetention(live=live, archive=archive)


async def apply_retention(
    kv: KeyValue, tenant: str, process_ids: Sequence[str], retention: ProcessRetention | None
) -> bool:
    """Give each deployed process the Workflow's retention; True when one changed."""
    changed = False
    for pid in process_ids:
        changed = await set_retention(kv, tenant, pid, retention) or changed
    return changed
