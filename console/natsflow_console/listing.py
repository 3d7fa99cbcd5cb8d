"""Instance listing with the console's filters, over the API's paged scan.

The API filters by process, state and business key on the server and pages in instance-id
order (ids start with their creation time). Version, start time and "has incidents" are
filtered here, page by page. Until an instance index exists, a listing reads every instance
record of the tenant after the cursor until it has a page of matches: :data:`SCAN_LIMIT`
records at most per request, after which it returns what it found with a cursor to go on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from natsflow_engine.api import protocol as p
from natsflow_engine.api.client import ApiClient

from natsflow_console.errors import BadRequest

__all__ = ["SCAN_LIMIT", "Filters", "Page", "list_instances", "parse_filters"]

SCAN_LIMIT = 20_000
_PAGE = 500
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
    """One page of matching instances in id order, and the cursor of the next page."""
    found: list[p.InstanceSummary] = []
    scanned = 0
    while scanned < SCAN_LIMIT:
        reply = await api.instances(
            process_id=filters.process_id,
            state=filters.state,
            business_key=filters.business_key,
            limit=_PAGE,
            cursor=cursor,
        )
        for summary in reply.instances:
            scanned += 1
            cursor = summary.id
            if filters.keep(summary):
                found.append(summary)
                if len(found) == limit:
                    return Page(found, cursor, scanned)
        if reply.cursor is None:
            return Page(found, None, scanned)
    return Page(found, cursor, scanned)
