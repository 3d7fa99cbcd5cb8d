"""Plain-text rendering of API replies for the command line: tables, details, history lines.

Pure functions from reply structs to strings (no I/O), so they are easy to test and reuse.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from natsflow_engine.api import protocol as p
from natsflow_engine.runtime.records import HistoryEvent, HistoryRecord

__all__ = [
    "history_lines",
    "incidents_table",
    "instance_detail",
    "instances_table",
    "table",
    "tasks_table",
    "triggers_table",
    "workflows_table",
]


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], empty: str = "(none)") -> str:
    """Columns aligned on the widest cell; ``empty`` when there are no rows."""
    cells = [[_cell(v) for v in row] for row in rows]
    if not cells:
        return empty
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def _time(iso: str | None) -> str:
    """``2026-01-01T12:00:01.123456+00:00`` -> ``2026-01-01 12:00:01``."""
    return iso[:19].replace("T", " ") if iso else "-"


def workflows_table(workflows: Sequence[p.WorkflowSummary]) -> str:
    return table(
        ["process", "version", "name", "deployed"],
        [(w.process_id, w.version, w.name, _time(w.deployed_at)) for w in workflows],
        "(no workflows deployed)",
    )


def instances_table(instances: Sequence[p.InstanceSummary]) -> str:
    return table(
        ["instance", "process", "version", "state", "business key", "started", "incidents"],
        [
            (i.id, i.process_id, i.version, i.state, i.business_key, _time(i.started), i.incidents or "")
            for i in instances
        ],
        "(no instances)",
    )


def tasks_table(tasks: Sequence[p.TaskView]) -> str:
    return table(
        ["task", "element", "name", "assignee", "groups", "created"],
        [
            (t.id, t.element_id, t.name, t.assignee, ",".join(t.candidate_groups) or None, _time(t.created))
            for t in tasks
        ],
        "(no open user tasks)",
    )


def incidents_table(incidents: Sequence[p.IncidentInfo]) -> str:
    return table(
        ["incident", "process", "element", "kind", "message"],
        [(i.id, i.process_id, i.element_id, i.kind, i.message[:80]) for i in incidents],
        "(no open incidents)",
    )


def triggers_table(triggers: Sequence[p.TriggerView]) -> str:
    return table(
        [
            "trigger",
            "subject",
            "process",
            "state",
            "pending",
            "received",
            "launched",
            "dups",
            "rejected",
            "last error",
        ],
        [
            (
                t.name,
                t.subject,
                t.process_id,
                "suspended" if t.suspended else "active",
                t.pending,
                t.received,
                t.launched,
                t.duplicates,
                t.rejected,
                (t.last_error or "")[:60] or None,
            )
            for t in triggers
        ],
        "(no triggers)",
    )


def _event_text(event: HistoryEvent) -> str:
    parts = [event.type]
    if event.element_id:
        parts.append(event.element_id)
    if event.data:
        parts.append(" ".join(f"{k}={v}" for k, v in sorted(event.data.items()) if v is not None))
    return " ".join(x for x in parts if x)


def history_lines(record: HistoryRecord) -> list[str]:
    """One line per event of a history record: time, step, event, element and details."""
    stamp = record.at[11:23] if len(record.at) >= 23 else record.at
    if not record.events:
        return [f"{stamp}  step {record.step:<3} {record.command} ({record.state})"]
    return [f"{stamp}  step {record.step:<3} {_event_text(e)}" for e in record.events]


def instance_detail(view: p.InstanceView, history: Sequence[HistoryRecord] = ()) -> str:
    """Everything about one instance: header, variables, active elements, incidents, history."""
    out = [
        f"instance   {view.id}",
        f"process    {view.process_id} (version {view.version})",
        f"state      {view.state}",
    ]
    if view.business_key:
        out.append(f"business   {view.business_key}")
    out.append(f"started    {_time(view.started)}" + (f"   ended {_time(view.ended)}" if view.ended else ""))
    if view.parent:
        out.append(f"parent     {view.parent}")
    out.append("variables")
    out += [f"  {k} = {json.dumps(v, sort_keys=True)}" for k, v in sorted(view.variables.items())] or [
        "  (none)"
    ]
    out.append("active elements")
    for a in view.active_elements:
        what = f"user task {a.user_task}" if a.user_task else f"job {a.job}" if a.job else ""
        flag = f"  INCIDENT {a.incident}" if a.incident else ""
        out.append(f"  {a.element_id} (#{a.ei}) {what}{flag}".rstrip())
    if not view.active_elements:
        out.append("  (none)")
    out.append("incidents")
    out += [f"  {i.id}  {i.element_id}  {i.kind}: {i.message}" for i in view.incidents] or ["  (none)"]
    if history:
        out.append("history")
        out += [f"  {line}" for record in history for line in history_lines(record)]
    return "\n".join(out)
