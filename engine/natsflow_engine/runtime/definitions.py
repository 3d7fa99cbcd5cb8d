"""Deployed definitions in the ``nf_workflows`` bucket, and a cache of compiled models.

A deployment stores the BPMN source once per process and version (key
``<tenant>.<process>.v<n>``) and moves the ``<tenant>.<process>.latest`` pointer. Deploying the
same content again creates no version. Engines compile a version the first time they need it
and keep it (versions never change).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import msgspec
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from natsflow_engine import layout
from natsflow_engine.bpmn.model import Definitions, Process
from natsflow_engine.errors import BpmnValidationError, InvalidNameError, NotFoundError, ValidationIssue
from natsflow_engine.natsutil import list_keys
from natsflow_engine.store import compare_and_set

__all__ = [
    "DefinitionCache",
    "DefinitionRecord",
    "Deployed",
    "DeployedProcess",
    "LatestRecord",
    "ProcessRetention",
    "Versioned",
    "deploy_definitions",
    "deploy_versioned",
    "delete_definitions",
    "get_latest",
    "list_definitions",
    "parse_and_check",
    "resolve_version",
    "set_retention",
]

log = logging.getLogger(__name__)


class Versioned(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What every deployed document's record carries (processes and forms): its version, the
    hash of its content, the file or object it came from and when. Decoders ignore the fields of
    the kinds, so :func:`deploy_versioned` reads any of them as this."""

    v: int = 1
    version: int
    source_hash: str
    name: str | None = None
    deployed_at: str = ""


class DefinitionRecord(Versioned, kw_only=True, omit_defaults=True):
    process_id: str
    source: str


class ProcessRetention(msgspec.Struct, kw_only=True, omit_defaults=True):
    """How long ended instances of a process are kept, set by its Workflow resource (seconds;
    None: the engine's configured retention for that part)."""

    live: float | None = None
    archive: float | None = None


class LatestRecord(Versioned, kw_only=True, omit_defaults=True):
    process_id: str
    retention: ProcessRetention | None = None
    """Kept across new versions; the engine applies it to every ended instance of the process."""


@dataclass(frozen=True)
class Deployed:
    """What :func:`deploy_versioned` did."""

    version: int
    revision: int
    created: bool  # False: the record already held this content


@dataclass(frozen=True, kw_only=True)
class DeployedProcess(Deployed):
    process_id: str
    source_hash: str


_head_decoder = msgspec.json.Decoder(Versioned)


async def deploy_versioned(
    kv: KeyValue, key: str, source_hash: str, store: Callable[[int, bytes | None], Awaitable[bytes]]
) -> Deployed:
    """Move the versioned record at ``key`` to the next version unless it holds ``source_hash``.

    ``store(version, current)`` writes whatever belongs to the new version and returns the
    record for ``key`` (``current`` is the record it replaces). The record moves by
    compare-and-set, so concurrent deploys get distinct version numbers; ``store`` may run again
    after a conflict, with the next number."""
    version: list[int] = []

    async def next_version(current: bytes | None) -> bytes | None:
        head = _head_decoder.decode(current) if current is not None else None
        if head is not None and head.source_hash == source_hash:
            version[:] = [head.version]
            return None
        version[:] = [head.version + 1 if head else 1]
        return await store(version[0], current)

    written = await compare_and_set(kv, key, next_version)
    return Deployed(version[0], written.revision or 0, written.changed)


_latest_decoder = msgspec.json.Decoder(LatestRecord)
_record_decoder = msgspec.json.Decoder(DefinitionRecord)


def parse_and_check(source: bytes | str | Path, *, name: str | None = None) -> Definitions:
    """Parse and validate, including the runtime's check of what it can execute.

    Raises :class:`natsflow.BpmnValidationError` listing every problem.
    """
    from natsflow_engine.bpmn import parse_bpmn
    from natsflow_engine.runtime.support import check_executable

    defs = parse_bpmn(source, name=name)
    check_executable(defs, name=name)
    _check_ids(defs, name)
    for warning in defs.warnings:
        log.warning("deploying %s: %s", name or "a BPMN document", warning)
    return defs


def _check_ids(defs: Definitions, name: str | None) -> None:
    """Process and element ids become parts of KV keys and subjects: refuse ids over
    ``layout.MAX_NAME`` characters or with control characters, naming each."""
    issues: list[ValidationIssue] = []
    for process in defs.processes.values():
        elements: list[tuple[str, str, int]] = [("process id", process.id, process.line)]
        elements += [("element id", node.id, node.line) for node in process.nodes.values()]
        elements += [("element id", flow.id, flow.line) for flow in process.flows.values()]
        for field, eid, line in elements:
            try:
                layout.check_name(field, eid)
            except InvalidNameError as exc:
                issues.append(ValidationIssue(eid[:40], line, str(exc)))
    if issues:
        raise BpmnValidationError(issues, source=name)


def _as_text(source: bytes | str | Path) -> str:
    if isinstance(source, Path):
        return source.read_bytes().decode("utf-8-sig")
    if isinstance(source, bytes):
        return source.decode("utf-8-sig")
    return source


async def deploy_definitions(
    kv: KeyValue,
    tenant: str,
    source: bytes | str | Path,
    *,
    name: str | None = None,
    now: datetime | None = None,
) -> list[DeployedProcess]:
    """Validate and store every executable process of a document; return what was deployed."""
    if isinstance(source, Path) and name is None:
        name = source.name
    text = _as_text(source)
    defs = parse_and_check(text, name=name)
    at = (now or datetime.now(UTC)).isoformat()
    results = []
    for process in defs.processes.values():
        if not process.executable:
            continue
        results.append(await _deploy_one(kv, tenant, process.id, defs.source_hash, text, name, at))
    return results


async def _deploy_one(
    kv: KeyValue, tenant: str, process_id: str, source_hash: str, text: str, name: str | None, at: str
) -> DeployedProcess:
    """Store a new version unless the latest has the same content (the version key first, then
    the ``latest`` pointer, which keeps the process's retention)."""

    async def store(version: int, current: bytes | None) -> bytes:
        record = DefinitionRecord(
            process_id=process_id, version=version, source_hash=source_hash, source=text, name=name, deployed_at=at
        )
        # a concurrent deploy that took this version number fails this create: look again
        await kv.create(layout.workflow_key(tenant, process_id, version), msgspec.json.encode(record))
        kept = _latest_decoder.decode(current).retention if current is not None else None
        return msgspec.json.encode(
            LatestRecord(
                process_id=process_id,
                version=version,
                source_hash=source_hash,
                name=name,
                deployed_at=at,
                retention=kept,
            )
        )

    done = await deploy_versioned(kv, layout.workflow_latest_key(tenant, process_id), source_hash, store)
    if done.created:
        log.info("deployed %s version %d for tenant %s", process_id, done.version, tenant)
    return DeployedProcess(done.version, done.revision, done.created, process_id=process_id, source_hash=source_hash)


async def set_retention(kv: KeyValue, tenant: str, process_id: str, retention: ProcessRetention | None) -> bool:
    """Give a deployed process its retention (None: the engine's); True when it changed.
    Raises :class:`NotFoundError` when the process is not deployed."""

    async def change(current: bytes | None) -> bytes | None:
        if current is None:
            raise NotFoundError(f"process {process_id!r} is not deployed in tenant {tenant!r}")
        latest = _latest_decoder.decode(current)
        if latest.retention == retention:
            return None
        return msgspec.json.encode(msgspec.structs.replace(latest, retention=retention))

    written = await compare_and_set(kv, layout.workflow_latest_key(tenant, process_id), change)
    return written.changed


async def get_latest(kv: KeyValue, tenant: str, process_id: str) -> LatestRecord:
    try:
        entry = await kv.get(layout.workflow_latest_key(tenant, process_id))
    except KeyNotFoundError:
        raise NotFoundError(f"process {process_id!r} is not deployed in tenant {tenant!r}") from None
    return _latest_decoder.decode(entry.value or b"")


async def resolve_version(
    kv: KeyValue,
    tenant: str,
    process_id: str,
    version: int | None = None,
    *,
    latest: Mapping[tuple[str, str], int] | None = None,
    check: bool = False,
) -> int:
    """The version a launch of ``process_id`` runs: ``version`` when given (with ``check``, only
    if it is deployed), else the latest, from the watched index ``latest`` where it has it (a
    version deployed a moment ago may not be in it yet) or read from KV. Raises
    :class:`NotFoundError` for a process or version that is not deployed."""
    if version is not None:
        if check:
            await get_definition(kv, tenant, process_id, version)
        return version
    known = latest.get((tenant, process_id)) if latest is not None else None
    if known is not None:
        return known
    return (await get_latest(kv, tenant, process_id)).version


async def get_definition(kv: KeyValue, tenant: str, process_id: str, version: int) -> DefinitionRecord:
    try:
        entry = await kv.get(layout.workflow_key(tenant, process_id, version))
    except KeyNotFoundError:
        raise NotFoundError(
            f"process {process_id!r} version {version} is not deployed in tenant {tenant!r}"
        ) from None
    return _record_decoder.decode(entry.value or b"")


async def list_definitions(kv: KeyValue, tenant: str) -> list[LatestRecord]:
    """The latest version of every process of a tenant."""
    keys = await list_keys(kv, f"{tenant}.*.latest")
    entries = await asyncio.gather(*(kv.get(k) for k in keys))
    return sorted((_latest_decoder.decode(e.value or b"") for e in entries), key=lambda r: r.process_id)


async def delete_definitions(kv: KeyValue, tenant: str, process_id: str) -> int:
    """Remove every version of a process. Running instances keep their compiled copy in the
    engines' caches but cannot be reloaded by a fresh engine; callers delete only unused
    processes. Returns the number of keys removed."""
    keys = await list_keys(kv, f"{tenant}.{layout.token(process_id)}.>")
    for key in keys:
        await kv.purge(key)
    return len(keys)


class DefinitionCache:
    """Compiled processes by (tenant, process id, version), loaded once from KV, LRU-bounded."""

    def __init__(self, kv: KeyValue, max_entries: int = 512) -> None:
        self._kv = kv
        self._max = max_entries
        self._cache: OrderedDict[tuple[str, str, int], Process] = OrderedDict()
        self._locks: dict[tuple[str, str, int], asyncio.Lock] = {}

    def put(self, tenant: str, defs: Definitions, version_of: dict[str, int]) -> None:
        for pid, process in defs.processes.items():
            if pid in version_of:
                self._store((tenant, pid, version_of[pid]), process)

    def _store(self, key: tuple[str, str, int], process: Process) -> None:
        self._cache[key] = process
        self._cache.move_to_end(key)
        while len(self._cache) > self._max:
            self._cache.popitem(last=False)

    async def get(self, tenant: str, process_id: str, version: int) -> Process:
        key = (tenant, process_id, version)
        found = self._cache.get(key)
        if found is not None:
            self._cache.move_to_end(key)
            return found
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            found = self._cache.get(key)
            if found is None:
                record = await get_definition(self._kv, tenant, process_id, version)
                from natsflow_engine.bpmn import parse_bpmn

                defs = parse_bpmn(record.source, name=record.name)
                found = defs.processes[process_id]
                self._store(key, found)
        self._locks.pop(key, None)
        return found
