"""Reading natsflow's state for the API: instance records, history, user tasks, triggers.

Pure conversions from records to reply structs, and the few scans over KV the listings need.
Listings read keys first (headers only, filtered by the server) and then values in small
concurrent batches, in key order, so paging is stable and cheap for the first pages. Instances
are listed from the instance index (:mod:`natsflow_engine.index`), never by reading records; an
instance whose live record is gone is found in its archived index entry.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC as _UTC
from datetime import datetime, timedelta

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError, KeyNotFoundError
from nats.js.errors import NotFoundError as JsNotFoundError
from nats.js.kv import KeyValue

from natsflow_engine import catalog, layout
from natsflow_engine.api import protocol as p
from natsflow_engine.errors import InvalidInputError, NotFoundError
from natsflow_engine.index import BUCKETS, IndexEntry, IndexQuery, find_entry, list_entries
from natsflow_engine.natsutil import list_kv_keys
from natsflow_engine.runtime import records as r
from natsflow_engine.triggers.stats import BUCKET_TRIGGER_STATS, TriggerStats, decode_stats

__all__ = [
    "incidents_of",
    "instance_view",
    "list_instances",
    "load_instance",
    "read_history",
    "scan_instances",
    "task_view",
    "trigger_views",
]

_history_decoder = msgspec.json.Decoder(r.HistoryRecord)
_BATCH = 64


async def load_instance(
    kv: KeyValue, tenant: str, instance: str, *, archive: JetStreamContext | None = None
) -> tuple[r.InstanceState, int]:
    """The instance record and its revision; with ``archive``, an ended instance whose live
    record is gone comes from its index entry (revision 0). :class:`NotFoundError` when absent."""
    missing = NotFoundError(f"instance {instance!r} not found in tenant {tenant!r}")
    if not instance or "." in instance or "*" in instance or ">" in instance or " " in instance:
        raise missing
    try:
        entry = await kv.get(layout.instance_key(tenant, instance))
    except KeyNotFoundError:
        entry = None
    if entry is not None and entry.value:
        return r.decode_state(entry.value), entry.revision or 0
    archived = await find_entry(archive, tenant, instance) if archive is not None else None
    final = archived.record if archived is not None else None
    if final is None:
        raise missing
    return final, 0


def _retries(state: r.InstanceState, incident: r.Incident) -> int | None:
    ei = state.eis.get(incident.ei)
    return ei.retries if ei is not None and incident.kind == "job-failed" else None


def incidents_of(state: r.InstanceState) -> list[p.IncidentInfo]:
    """The open incidents of an instance. An ended instance has none: its incidents closed with
    it (records written before the engine cleared them on ending still list them); a failed
    launch keeps the one that says why it failed."""
    if state.state not in ("active", "failed"):
        return []
    return [
        p.IncidentInfo(
            id=i.id,
            instance=state.id,
            process_id=state.process_id,
            element_id=i.element_id,
            kind=i.kind,
            message=i.message,
            at=i.at,
            ei=i.ei,
            retries=_retries(state, i),
        )
        for i in state.incidents
    ]


def instance_view(state: r.InstanceState) -> p.InstanceView:
    active = []
    if state.state == "active":
        for ei in sorted(state.eis.values(), key=lambda e: e.key):
            if ei.key == 1:
                continue
            active.append(
                p.ActiveElement(
                    ei=ei.key,
                    element_id=ei.el,
                    parent=ei.parent,
                    job=ei.job,
                    incident=ei.incident,
                    user_task=ei.user_task,
                )
            )
    return p.InstanceView(
        id=state.id,
        process_id=state.process_id,
        version=state.version,
        state=state.state,
        variables=dict(state.root_vars()),
        active_elements=active,
        incidents=incidents_of(state),
        business_key=state.business_key,
        started=state.started,
        ended=state.ended,
        step=state.step,
        parent=state.parent.instance if state.parent else None,
    )


_STATES = ("active", "completed", "cancelled", "failed")
_MAX_DAYS = 31
"""Longest start-time range that becomes day filters on the server; longer ones are filtered
entry by entry."""
_MAX_VARIABLES = 8


def _when(field: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00")) if len(text) <= 40 else None
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        raise InvalidInputError(f"{field} must be an ISO 8601 time with a zone, such as 2026-12-04T10:00:00Z")
    return value


def index_query(tenant: str, req: p.InstanceListRequest) -> IndexQuery:
    """The index filter of a listing request; :class:`InvalidInputError` names a bad field."""
    if req.state is not None and req.state not in _STATES:
        raise InvalidInputError(f"state must be one of {', '.join(_STATES)}, not {req.state!r}")
    buckets: tuple[str, ...] = BUCKETS if req.state is None else (req.state,)
    if req.state == "active":
        buckets = ("active", "incident")
    if req.incidents is not None:
        buckets = tuple(b for b in buckets if (b == "incident") == req.incidents)
    after, before = _when("started_after", req.started_after), _when("started_before", req.started_before)
    days: tuple[str, ...] = ()
    if after is not None and before is not None and timedelta(0) <= before - after <= timedelta(days=_MAX_DAYS):
        first, last = after.astimezone(_UTC).date(), before.astimezone(_UTC).date()
        days = tuple((first + timedelta(days=n)).strftime("%Y%m%d") for n in range((last - first).days + 1))
    variables = req.variables or {}
    if len(variables) > _MAX_VARIABLES:
        raise InvalidInputError(f"filter on at most {_MAX_VARIABLES} variables")
    for name in variables:
        layout.check_name("variable", name)
    return IndexQuery(
        tenant=tenant,
        buckets=buckets if set(buckets) != set(BUCKETS) else (),
        process_id=req.process_id,
        version=req.version,
        business_key=req.business_key,
        days=days,
        started_after=after,
        started_before=before,
        attrs=variables,
    )


async def list_instances(js: JetStreamContext, tenant: str, req: p.InstanceListRequest) -> p.InstanceListReply:
    """One page of the instance index; the cursor is ``p<stream sequence>``."""
    if not 1 <= req.limit <= 1000:
        raise InvalidInputError(f"limit must be between 1 and 1000, not {req.limit}")
    after = 0
    if req.cursor is not None:
        if not (req.cursor[:1] == "p" and req.cursor[1:].isdigit() and len(req.cursor) < 20):
            raise InvalidInputError("cursor must be the cursor of a previous page")
        after = int(req.cursor[1:])
    query = index_query(tenant, req)
    if req.incidents is not None and not query.buckets:
        return p.InstanceListReply(instances=[])
    page = await list_entries(js, query, req.limit, after)
    return p.InstanceListReply(
        instances=[entry_summary(e) for e in page.entries],
        cursor=None if page.cursor is None else f"p{page.cursor}",
    )


def entry_summary(entry: IndexEntry) -> p.InstanceSummary:
    """The listing row of an index entry (the entry has every field of the row)."""
    return p.InstanceSummary(**{name: getattr(entry, name) for name in p.InstanceSummary.__struct_fields__})


async def scan_instances(
    js: JetStreamContext,
    kv: KeyValue,
    tenant: str,
    *,
    after: str | None = None,
    keep: Callable[[r.InstanceState], bool] | None = None,
) -> AsyncIterator[r.InstanceState]:
    """Instance records of a tenant in id order (after ``after``), those ``keep`` accepts."""
    prefix = f"{tenant}."
    ids = sorted(k[len(prefix) :] for k in await list_kv_keys(js, layout.BUCKET_INSTANCES, f"{tenant}.*"))
    if after:
        ids = [i for i in ids if i > after]
    for start in range(0, len(ids), _BATCH):
        chunk = ids[start : start + _BATCH]
        entries = await asyncio.gather(*(_get(kv, prefix + i) for i in chunk))
        for value in entries:
            if value is None:
                continue
            try:
                state = r.decode_state(value)
            except msgspec.DecodeError:
                continue
            if keep is None or keep(state):
                yield state


async def _get(kv: KeyValue | None, key: str) -> bytes | None:
    if kv is None:
        return None
    try:
        entry = await kv.get(key)
    except KeyNotFoundError:
        return None
    return entry.value or None


async def read_history(
    js: JetStreamContext, tenant: str, instance: str, *, after_step: int = 0, limit: int = 1000
) -> tuple[list[r.HistoryRecord], bool]:
    """History records of an instance in step order; (records, more)."""
    subject = layout.history_subject(tenant, instance)
    try:
        last = await js.get_last_msg(layout.STREAM_HISTORY, subject)
    except JsNotFoundError:
        return [], False
    records: list[r.HistoryRecord] = []
    more = False
    sub = await js.subscribe(subject, ordered_consumer=True, stream=layout.STREAM_HISTORY)
    try:
        while True:
            msg = await sub.next_msg(timeout=5.0)
            record = _history_decoder.decode(msg.data)
            if record.step > after_step:
                if len(records) >= limit:
                    more = True
                    break
                records.append(record)
            if msg.metadata.sequence.stream >= (last.seq or 0):
                break
    finally:
        await sub.unsubscribe()
    return records, more


def task_view(task: r.UserTask) -> p.TaskView:
    return p.TaskView(
        id=task.id,
        instance=task.instance,
        process_id=task.process_id,
        element_id=task.element_id,
        name=task.name,
        assignee=task.assignee,
        candidate_groups=task.candidate_groups,
        candidate_users=task.candidate_users,
        due_date=task.due_date,
        follow_up_date=task.follow_up_date,
        form_key=task.form_key,
        form_id=task.form_id,
        created=task.created,
        variables=task.variables,
    )


async def trigger_views(js: JetStreamContext, triggers: KeyValue, tenant: str) -> list[p.TriggerView]:
    """Every trigger of a tenant with its counters (``nf_trigger_stats``) and pending messages."""
    keys = sorted(await list_kv_keys(js, layout.BUCKET_TRIGGERS, f"{tenant}.*"))
    try:
        stats_kv: KeyValue | None = await js.key_value(BUCKET_TRIGGER_STATS)
    except BucketNotFoundError:
        stats_kv = None
    views = []
    for key in keys:
        value = await _get(triggers, key)
        if value is None:
            continue
        try:
            rec = catalog.decode_trigger(value)
        except msgspec.DecodeError:
            continue
        stats = decode_stats(await _get(stats_kv, key)) if stats_kv is not None else TriggerStats()
        views.append(
            p.TriggerView(
                name=rec.name,
                subject=rec.subject,
                process_id=rec.process_id,
                stream=rec.stream,
                consumer=rec.consumer,
                version=rec.version,
                suspended=rec.suspended,
                received=stats.received,
                launched=stats.launched,
                duplicates=stats.duplicates,
                rejected=stats.rejected,
                redelivered=stats.redelivered,
                last_error=stats.last_error,
                last_error_at=stats.last_error_at,
                pending=await _pending(js, rec),
            )
        )
    return views


async def _pending(js: JetStreamContext, rec: catalog.TriggerRecord) -> int | None:
    if not rec.stream or not rec.consumer:
        return None
    try:
        info = await js.consumer_info(rec.stream, rec.consumer)
    except JsNotFoundError:
        return None
    pending: int | None = info.num_pending
    return pending
