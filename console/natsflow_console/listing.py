"""Instance listing with the console's filters, over the API's instance index.

The API filters by process, version, state, business key, start time and "has incidents" on
the engine's instance index and pages in the order of the instances' last change of state;
this module only parses the console's query parameters and passes the API's cursor on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from natsflow_engine.api import protocol as p
from natsflow_engine.api.client import ApiClient

from natsflow_console.errors import BadRequest

_PAGE = 1000
"""The API's largest page."""

__all__ = ["Filters", "Page", "list_instances", "parse_filters"]

STATES = ("active", "completed", "cancelled", "failed")


@dataclass(frozen=True)
class Filters:
    process_id: str | None = None
    version: int | None = None
    state: str | None = None
    business_key: str | None = None
    started_after: datetime | None = None
    started_before: datetime | None = None
    incidents: bool | None = None

    def keep(self, s: p.InstanceSummary) -> bool:
        if self.version is not None and s.version != self.version:
            return False
        if self.incidents is not None and (s.incidents > 0) != self.incidents:
            return False
        if self.started_after or self.started_before:
            started = _when(s.started)
            if started is None:
                return False
            if self.started_after and started < self.started_after:
                return False
            if self.started_before and started > self.started_before:
                return False
        return True


@dataclass
class Page:
    instances: list[p.InstanceSummary]
    cursor: str | None
    scanned: int


def _when(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else None


def _text(query: dict[str, str], name: str, limit: int = 256) -> str | None:
    value = query.get(name, "").strip()
    if not value:
        return None
    if len(value) > limit:
        raise BadRequest(f"{name} is longer than {limit} characters")
    return value


def parse_filters(query: dict[str, str]) -> Filters:
    """Filters from query parameters; :class:`BadRequest` names the bad one."""
    version = _text(query, "version", 12)
    if version is not None and not version.isdigit():
        raise BadRequest(f"version must be a positive number, not {version!r}")
    state = _text(query, "state", 16)
    if state is not None and state not in STATES:
        raise BadRequest(f"state must be one of {', '.join(STATES)}, not {state!r}")
    dates = {}
    for name in ("started_after", "started_before"):
        text = _text(query, name, 40)
        dates[name] = _when(text) if text else None
        if text and dates[name] is None:
            raise BadRequest(f"{name} must be an ISO 8601 time with a zone, such as 2026-12-04T10:00:00Z")
    incidents = _text(query, "incidents", 5)
    if incidents not in (None, "yes", "no"):
        raise BadRequest("incidents must be yes or no")
    return Filters(
        process_id=_text(query, "process"),
        version=int(version) if version else None,
        state=state,
        business_key=_text(query, "business_key"),
        started_after=dates["started_after"],
        started_before=dates["started_before"],
        incidents=None if incidents is None else incidents == "yes",
    )


async def list_instances(
    api: ApiClient, filters: Filters, *, limit: int = 50, cursor: str | None = None
) -> Page:
    """Up to ``limit`` matching instances (several API pages when more than one page's worth),
    and the cursor of what follows."""
    found: list[p.InstanceSummary] = []
    read = 0
    while True:
        reply = await api.instances(
            process_id=filters.process_id,
            version=filters.version,
            state=filters.state,
            business_key=filters.business_key,
            started_after=filters.started_after.isoformat() if filters.started_after else None,
            started_before=filters.started_before.isoformat() if filters.started_before else None,
            incidents=filters.incidents,
            limit=min(_PAGE, limit - len(found)),
            cursor=cursor,
        )
        read += len(reply.instances)
        found += [s for s in reply.instances if filters.keep(s)]
        cursor = reply.cursor
        if cursor is None or len(found) >= limit:
            return Page(found, cursor, read)
