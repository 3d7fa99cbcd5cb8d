"""Deployed Camunda forms (``.form`` JSON files) in the ``nf_workflows`` bucket.

A user task links a form by id (``<zeebe:formDefinition formId="…"/>``); the form is deployed
like a process (CLI, API, test kit, console) and rendered by the console with form-js. One
record per form id (key :func:`~natsflow_engine.layout.form_key`) holds the latest schema; a
deploy with different content gives it the next version number, the same content changes
nothing. The engine itself never reads forms: a user task carries the form id, a task list
client fetches the schema.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from natsflow_engine import layout
from natsflow_engine.errors import InvalidInputError, InvalidNameError, NotFoundError
from natsflow_engine.runtime.definitions import Deployed, Versioned, deploy_versioned

__all__ = ["MAX_FORM", "DeployedForm", "FormRecord", "deploy_form", "get_form", "is_form", "parse_form"]

MAX_FORM = 256 * 1024
"""Largest form document, bytes."""


class FormRecord(Versioned, kw_only=True, omit_defaults=True):
    form_id: str
    source: str
    """The form's JSON, as deployed."""


@dataclass(frozen=True, kw_only=True)
class DeployedForm(Deployed):
    form_id: str


_decoder = msgspec.json.Decoder(FormRecord)


def is_form(text: str, name: str | None = None) -> bool:
    """A ``.form`` file, or a document that is a JSON object (BPMN is XML)."""
    return (name or "").endswith(".form") or text.lstrip("\ufeff \t\r\n").startswith("{")


def parse_form(text: str, name: str | None = None) -> tuple[str, dict[str, Any]]:
    """The form id and schema of a Camunda form document; :class:`InvalidInputError` names
    what is wrong."""
    where = name or "the form"
    if len(text.encode()) > MAX_FORM:
        raise InvalidInputError(f"{where} is larger than {MAX_FORM} bytes")
    try:
        schema = msgspec.json.decode(text.lstrip("\ufeff"))
    except msgspec.DecodeError as exc:
        raise InvalidInputError(f"{where} is not JSON: {exc}") from None
    if not isinstance(schema, dict):
        raise InvalidInputError(f"{where}: a form is a JSON object")
    form_id = schema.get("id")
    if not isinstance(form_id, str) or not form_id:
        raise InvalidInputError(f"{where}: id must be the form id that user tasks name in formId")
    try:
        layout.check_name("form id", form_id)
    except InvalidNameError as exc:
        raise InvalidInputError(f"{where}: {exc}") from None
    if not isinstance(schema.get("components"), list):
        raise InvalidInputError(f"{where}: components must be a list (a Camunda form schema)")
    if schema.get("type", "default") != "default":
        raise InvalidInputError(f"{where}: type must be default, not {schema.get('type')!r}")
    return form_id, schema


async def deploy_form(
    kv: KeyValue, tenant: str, source: str, *, name: str | None = None, now: datetime | None = None
) -> DeployedForm:
    form_id, _ = parse_form(source, name)
    digest = hashlib.sha256(source.encode()).hexdigest()
    at = (now or datetime.now(UTC)).isoformat()

    async def store(version: int, current: bytes | None) -> bytes:
        record = FormRecord(
            form_id=form_id, version=version, source_hash=digest, source=source, name=name, deployed_at=at
        )
        return msgspec.json.encode(record)

    done = await deploy_versioned(kv, layout.form_key(tenant, form_id), digest, store)
    return DeployedForm(done.version, done.revision, done.created, form_id=form_id)


async def get_form(kv: KeyValue, tenant: str, form_id: str) -> FormRecord:
    layout.check_name("form id", form_id)
    try:
        entry = await kv.get(layout.form_key(tenant, form_id))
    except KeyNotFoundError:
        raise NotFoundError(f"form {form_id!r} is not deployed in tenant {tenant!r}") from None
    return _decoder.decode(entry.value or b"")
