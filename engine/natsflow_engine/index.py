"""The instance index: listing and filtering instances without reading every record.

One KV entry per instance in ``nf_index``, under a key whose tokens are what a listing filters
on (:func:`natsflow_engine.layout.index_key`)::

    <tenant>.<bucket>.<process token>.<version>.<YYYYMMDD of the start>.<business key token>.<instance>

``bucket`` is ``active``, ``incident`` (active with open incidents), ``completed``,
``cancelled`` or ``failed``. A listing is one ephemeral consumer whose filter subjects the
server matches (``*`` for a part not filtered), read from a stream sequence on: the first page
costs the same with ten instances or a million. The value (:class:`IndexEntry`) is the summary a
listing shows, the searchable variables, and, once the instance ended, its final record: the
entry of an ended instance *is* its archive, kept for :attr:`Retention.archive` (a per-message
TTL; the bucket's own ``max_bytes`` bounds it too).

The entry is a pure function of the instance record. The store writes it after the record's
commit, pipelined with the step's effects and only when it changed, and purges the entry under
the instance's previous key (a purge marker with a short TTL, so markers do not pile up). A
process that republishes a record's unflushed outbox rewrites the entry too, so a crash between
the commit and the index write is repaired like a lost effect. :func:`rebuild` recomputes the
whole index from the records (the backfill of records written before the index existed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeAlias

import msgspec
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, RawStreamMsg
from nats.js.errors import NotFoundError
from nats.js.kv import KeyValue

from natsflow_engine import layout
from natsflow_engine.natsutil import list_kv_keys
from natsflow_engine.runtime import records as r

__all__ = [
    "BUCKETS",
    "ENDED",
    "Archived",
    "IndexEntry",
    "IndexPage",
    "IndexQuery",
    "IndexSettings",
    "IndexWrite",
    "InstanceIndex",
    "Retention",
    "bucket_of",
    "find_entry",
    "list_entries",
    "rebuild",
]

log = logging.getLogger(__name__)

ENDED = ("completed", "cancelled", "failed")
BUCKETS = ("active", "incident", *ENDED)
_LIVE = ("active", "incident")
GRACE = 3600.0
"""Seconds an ended entry outlives its archive retention (its TTL is the sum), so that the
retention sweep (:mod:`natsflow_engine.retention`) sees it and removes its history too."""
_MARKER_TTL = 1.0
"""Seconds a purge marker of a moved entry stays (the shortest TTL JetStream takes)."""
_MAX_ATTR = 255
"""Longest string value of a searchable variable kept in the index."""
_MAX_ATTRS = 32
"""Searchable variables kept per instance, at most."""
_ENTRY_ROOM = 16 * 1024
"""Room left in an entry for its fields besides the final record (bounded by the two above)."""

Scalar: TypeAlias = str | int | float | bool | None
INDEX_VERSION = 1


class IndexEntry(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What the index keeps of an instance (versioned; unknown fields are ignored)."""

    v: int = INDEX_VERSION
    id: str
    tenant: str
    process_id: str
    version: int
    state: str
    business_key: str | None = None
    started: str = ""
    ended: str | None = None
    incidents: int = 0
    step: int = 0
    attrs: dict[str, Scalar] = {}
    """Searchable variables (:attr:`IndexSettings.searchable`), scalars only."""


class _Stored(IndexEntry, kw_only=True, omit_defaults=True):
    """An entry as written: with the final record of an ended instance (the archive)."""

    record: msgspec.Raw | None = None


class _Read(IndexEntry, kw_only=True):
    record: msgspec.Raw = msgspec.Raw(b"")


@dataclass(frozen=True)
class Archived:
    """An entry as :func:`find_entry` reads it, with the final record of an ended instance."""

    entry: IndexEntry
    record: r.InstanceState | None


_entry_decoder = msgspec.json.Decoder(IndexEntry)
_read_decoder = msgspec.json.Decoder(_Read)


@dataclass(frozen=True)
class Retention:
    """How long an ended instance stays where (seconds; None: for ever)."""

    live: float | None = None
    """In ``nf_instances`` after it ended: the engine's final write carries this TTL. None keeps
    records for ever, as before retention existed."""
    archive: float | None = 30 * 24 * 3600.0
    """Its index entry with the final record, after it ended (``natsflow show`` and the API
    find it there once the live record is gone)."""


@dataclass(frozen=True)
class IndexSettings:
    """What the engine indexes and how long ended instances are kept."""

    retention: Retention = field(default_factory=Retention)
    """The default retention."""
    retention_overrides: Mapping[str, Retention] = field(default_factory=dict)
    """Per ``<tenant>/<process id>`` or ``<tenant>/*`` (the first that matches wins)."""
    sweep_interval: float = 60.0
    """Seconds between retention sweeps (:mod:`natsflow_engine.retention`)."""
    searchable: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Root variables kept in the index per process id (``*``: every process); a listing may
    filter on them. Only scalars are kept (strings up to 255 characters)."""
    deployed: Mapping[tuple[str, str], tuple[float | None, float | None]] = field(default_factory=dict)
    """(live, archive) per (tenant, process id) from the process's Workflow resource (its
    ``latest`` pointer; the engine keeps this current): a part set there wins over the above."""

    def retention_for(self, tenant: str, process_id: str) -> Retention:
        configured = self.retention
        for name in (f"{tenant}/{process_id}", f"{tenant}/*"):
            found = self.retention_overrides.get(name)
            if found is not None:
                configured = found
                break
        own = self.deployed.get((tenant, process_id))
        if own is None:
            return configured
        live, archive = own
        return Retention(
            live=configured.live if live is None else live,
            archive=configured.archive if archive is None else archive,
        )

    def searchable_of(self, process_id: str) -> tuple[str, ...]:
        return self.searchable.get(process_id, ()) + self.searchable.get("*", ())


def bucket_of(state: r.InstanceState) -> str:
    if state.state == "active":
        return "incident" if state.incidents else "active"
    return state.state if state.state in ENDED else layout.token(state.state)


def _day(started: str) -> str:
    digits = started[:10].replace("-", "")
    return digits if len(digits) == 8 and digits.isdigit() else "0"


def _key(state: r.InstanceState, bucket: str) -> str:
    return layout.index_key(
        state.tenant, bucket, state.process_id, state.version, _day(state.started), state.business_key, state.id
    )


def _attrs(state: r.InstanceState, names: tuple[str, ...]) -> dict[str, Scalar]:
    if not names:
        return {}
    values = state.root_vars()
    attrs: dict[str, Scalar] = {}
    for name in names[:_MAX_ATTRS]:
        value = values.get(name)
        if isinstance(value, str) and len(value) > _MAX_ATTR:
            continue
        if name in values and (value is None or isinstance(value, str | int | float | bool)):
            attrs[name] = value
    return attrs


@dataclass(frozen=True)
class IndexWrite:
    """One message to the index bucket: an entry or a purge marker."""

    subject: str
    data: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Indexed:
    """An instance's index entry: its key and encoded value."""

    key: str
    data: bytes
    ended: bool
    basis: tuple[object, ...] | None = field(default=None, compare=False)
    """What the entry of an active instance was made from that can change while it runs (open
    incidents, business key, searchable variables): an equal basis makes the same entry."""


class InstanceIndex:
    """Writes index entries (see the module docstring); one per engine."""

    def __init__(
        self,
        js: JetStreamContext,
        settings: IndexSettings | None = None,
        *,
        ttl: bool = True,
        max_payload: int = 1024 * 1024,
    ) -> None:
        self.js = js
        self.settings = settings or IndexSettings()
        self.ttl = ttl
        """Whether the buckets accept per-message TTLs (False: retention is not applied)."""
        self.max_record = max_payload - _ENTRY_ROOM
        """A final record larger than this is not archived in the entry (only its summary)."""
        self.backfill = False
        """The index is empty while records exist (records older than the index): the engine
        rebuilds it in the background."""

    @classmethod
    async def open(
        cls, js: JetStreamContext, settings: IndexSettings | None = None, *, max_payload: int = 1024 * 1024
    ) -> InstanceIndex:
        """An index over the existing buckets, retention off where a bucket refuses TTLs."""
        ttl, messages = True, []
        for bucket in (layout.BUCKET_INDEX, layout.BUCKET_INSTANCES):
            info = await js.stream_info(f"KV_{bucket}")
            messages.append(info.state.messages)
            if not info.config.allow_msg_ttl:
                log.warning("bucket %s does not allow message TTLs: ended instances are kept for ever", bucket)
                ttl = False
        index = cls(js, settings, ttl=ttl, max_payload=max_payload)
        index.backfill = messages[0] == 0 and messages[1] > 0
        return index

    def entry(self, state: r.InstanceState, previous: Indexed | None = None) -> Indexed:
        """The entry of ``state``; ``previous`` (the instance's entry as the index has it) when
        nothing it was made from changed, without encoding it again (most steps)."""
        ended = state.state != "active"
        attrs = _attrs(state, self.settings.searchable_of(state.process_id))
        basis = None if ended else (len(state.incidents), state.business_key, *attrs.items())
        if basis is not None and previous is not None and previous.basis == basis:
            return previous
        record = None
        if ended:
            final = r.encode(msgspec.structs.replace(state, outbox=[], outbox_cmd=None, outbox_at=None))
            record = msgspec.Raw(final) if len(final) <= self.max_record else None
        value = _Stored(
            id=state.id,
            tenant=state.tenant,
            process_id=state.process_id,
            version=state.version,
            state=state.state,
            business_key=state.business_key,
            started=state.started,
            ended=state.ended,
            incidents=len(state.incidents) if not ended else 0,  # older records kept them open at the end
            step=state.step if ended else 0,
            attrs=attrs,
            record=record,
        )
        return Indexed(_key(state, bucket_of(state)), r.encode(value), ended, basis)

    def live_ttl(self, state: r.InstanceState) -> float | None:
        """TTL of the record's write: the live retention of an ended instance."""
        if state.state == "active" or not self.ttl:
            return None
        return self.settings.retention_for(state.tenant, state.process_id).live

    def write(self, state: r.InstanceState, new: Indexed, previous: Indexed | None) -> list[IndexWrite]:
        """The messages that move the entry from ``previous`` to ``new`` (none when equal)."""
        if previous == new:
            return []
        archive = self.settings.retention_for(state.tenant, state.process_id).archive
        ttl = archive + GRACE if new.ended and self.ttl and archive is not None else None
        ops: list[IndexWrite] = []
        if previous is not None and previous.key != new.key:  # first, so the entry is the last message
            ops.append(self.purge_message(previous.key))
        ops.append(IndexWrite(f"$KV.{layout.BUCKET_INDEX}.{new.key}", new.data, _ttl_header(ttl)))
        return ops

    def repair(self, state: r.InstanceState, new: Indexed) -> list[IndexWrite]:
        """Write the entry of a record whose previous entry is unknown (its step's writes may
        have been lost): purges of the keys an instance moves between, and the entry."""
        ops = [self.purge_message(_key(state, b)) for b in _LIVE if _key(state, b) != new.key]
        return ops + self.write(state, new, None)

    def purge_message(self, key: str) -> IndexWrite:
        """The purge of the entry under ``key`` (a marker that expires after a second)."""
        headers = {"KV-Operation": "PURGE", "Nats-Rollup": "sub"}
        if self.ttl:
            headers.update(_ttl_header(_MARKER_TTL))
        return IndexWrite(f"$KV.{layout.BUCKET_INDEX}.{key}", b"", headers)

    async def send(self, writes: list[IndexWrite]) -> None:
        """Publish ``writes`` (pipelined, in order) and wait for their acknowledgements."""
        await asyncio.gather(*(self.js.publish(w.subject, w.data, headers=dict(w.headers)) for w in writes))

    async def purge(self, key: str) -> None:
        """Remove the entry under ``key``."""
        await self.send([self.purge_message(key)])


def _ttl_header(ttl: float | None) -> dict[str, str]:
    """The per-message TTL header (whole seconds, as nats-py's ``msg_ttl`` sends it)."""
    return {} if ttl is None else {"Nats-TTL": str(int(ttl))}


# --- reading ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexQuery:
    """A filter over the index; None: any."""

    tenant: str
    buckets: tuple[str, ...] = ()
    """Empty: every bucket."""
    process_id: str | None = None
    version: int | None = None
    business_key: str | None = None
    days: tuple[str, ...] = ()
    """``YYYYMMDD`` of the start; empty: any day."""
    started_after: datetime | None = None
    started_before: datetime | None = None
    attrs: Mapping[str, Scalar] = field(default_factory=dict)

    def subjects(self) -> list[str]:
        return [
            layout.index_subject(self.tenant, b, self.process_id, self.version, d, self.business_key)
            for b in (self.buckets or (layout.INDEX_ANY,))
            for d in (self.days or (layout.INDEX_ANY,))
        ]

    def keeps(self, entry: IndexEntry) -> bool:
        """The conditions a subject cannot express."""
        if self.started_after is not None or self.started_before is not None:
            started = _time(entry.started)
            if started is None:
                return False
            if self.started_after is not None and started < self.started_after:
                return False
            if self.started_before is not None and started >= self.started_before:
                return False
        return all(k in entry.attrs and entry.attrs[k] == v for k, v in self.attrs.items())


def _time(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo is not None else None


@dataclass(frozen=True)
class IndexPage:
    entries: list[IndexEntry]
    cursor: int | None
    """The stream sequence to pass to the next listing; None on the last page."""


_PAGE_BUDGET = 50_000
"""Entries one page may read past (filters the server cannot match); then it ends early with a
cursor, so a page never scans the whole index."""


_CHAINED_PAGE = 100
"""Pages up to this many entries are read message by message (each ``next_by_subj`` get starts
at the one before it), whose cost follows the page. A consumer, which larger pages use, has
nats-server count every matching entry after the cursor when it is created: 22-27 ms with
200,000 entries and 170-220 ms with 1,000,000 (docs/benchmarks.md, index paging)."""


async def list_entries(js: JetStreamContext, query: IndexQuery, limit: int, after: int = 0) -> IndexPage:
    """Up to ``limit`` entries matching ``query``, in the order of their last change, from
    stream sequence ``after`` on. An entry changed while a client pages may be listed again on
    a later page, never skipped."""
    if limit > _CHAINED_PAGE:
        return await _consumer_page(js, query, limit, after)
    entries, last, more = await _chained_page(js, query, limit, after, budget=4 * limit + 64)
    if more is not None:
        return IndexPage(entries, last if more else None)
    rest = await _consumer_page(js, query, limit - len(entries), last)  # a sparse filter: past the budget
    return IndexPage(entries + rest.entries, rest.cursor)


async def _next_match(js: JetStreamContext, stream: str, subject: str, seq: int) -> RawStreamMsg | None:
    try:
        return await js.get_msg(stream, seq=seq, subject=subject, next=True)
    except NotFoundError:
        return None


async def _chained_page(
    js: JetStreamContext, query: IndexQuery, limit: int, after: int, *, budget: int
) -> tuple[list[IndexEntry], int, bool | None]:
    """The page read by chained gets, merging the query's subjects by sequence: its entries,
    the last sequence read, and whether more match after it (None: ``budget`` messages were
    read before the page filled)."""
    stream = f"KV_{layout.BUCKET_INDEX}"
    subjects = query.subjects()
    heads = dict(zip(subjects, await asyncio.gather(*(_next_match(js, stream, s, after + 1) for s in subjects)),
                     strict=True))
    entries: list[IndexEntry] = []
    last, scanned = after, 0
    while True:
        live = [(msg.seq, subject) for subject, msg in heads.items() if msg is not None and msg.seq is not None]
        if not live:
            return entries, last, False
        if len(entries) >= limit:
            return entries, last, True
        if scanned >= budget:
            return entries, last, None
        last, subject = min(live)
        msg = heads[subject]
        heads[subject] = await _next_match(js, stream, subject, last + 1)
        scanned += 1
        assert msg is not None
        entry = _live_entry(msg.data, msg.headers)
        if entry is not None and query.keeps(entry):
            entries.append(entry)


def _live_entry(data: bytes | None, headers: Mapping[str, str] | None) -> IndexEntry | None:
    """The entry a message of ``nf_index`` holds; None for a deletion or what does not decode."""
    if not data or (headers or {}).get("KV-Operation") in ("DEL", "PURGE"):
        return None
    try:
        return _entry_decoder.decode(data)
    except msgspec.DecodeError:
        return None


async def _consumer_page(js: JetStreamContext, query: IndexQuery, limit: int, after: int) -> IndexPage:
    stream = f"KV_{layout.BUCKET_INDEX}"
    subjects = query.subjects()
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE if after else DeliverPolicy.ALL,
        opt_start_seq=after + 1 if after else None,
        ack_policy=AckPolicy.NONE,
        inactive_threshold=30.0,
        mem_storage=True,
        num_replicas=1,
    )
    if len(subjects) == 1:
        config.filter_subject = subjects[0]
    else:
        config.filter_subjects = subjects
    info = await js.add_consumer(stream, config)
    assert info.name is not None
    entries: list[IndexEntry] = []
    last, scanned = after, 0
    try:
        remaining = info.num_pending or 0
        if remaining == 0:
            return IndexPage([], None)
        psub = await js.pull_subscribe_bind(durable=info.name, stream=stream)
        try:
            while remaining > 0 and len(entries) < limit and scanned < _PAGE_BUDGET:
                batch = min(remaining, max(limit - len(entries), 64), 1000)
                for msg in await psub.fetch(batch, timeout=5.0):
                    remaining, scanned = msg.metadata.num_pending, scanned + 1
                    if len(entries) >= limit:
                        remaining = 1  # more to come
                        break
                    last = msg.metadata.sequence.stream
                    entry = _live_entry(msg.data, msg.headers)
                    if entry is not None and query.keeps(entry):
                        entries.append(entry)
        finally:
            with contextlib.suppress(Exception):
                await psub.unsubscribe()
    finally:
        with contextlib.suppress(Exception):
            await js.delete_consumer(stream, info.name)
    return IndexPage(entries, last if remaining > 0 else None)


async def find_entry(js: JetStreamContext, tenant: str, instance_id: str) -> Archived | None:
    """The index entry of one instance (any bucket), with its final record once it ended."""
    pattern = f"{tenant}.*.*.*.*.*.{instance_id}"
    try:
        msg = await js.get_last_msg(f"KV_{layout.BUCKET_INDEX}", f"$KV.{layout.BUCKET_INDEX}.{pattern}")
    except NotFoundError:
        return None
    data = msg.data
    if not data:  # the last message is the purge marker of a moved entry: list the live keys
        keys = await list_kv_keys(js, layout.BUCKET_INDEX, pattern)
        kv = await js.key_value(layout.BUCKET_INDEX)
        data = (await _entry(kv, keys[0]))[0] if keys else None
        if not data:
            return None
    try:
        read = _read_decoder.decode(data)
        record = r.decode_state(bytes(read.record)) if len(read.record) else None
    except msgspec.DecodeError:
        return None
    return Archived(read, record)


async def rebuild(js: JetStreamContext, records: KeyValue, index: InstanceIndex, *, batch: int = 64) -> int:
    """Write the index entry of every record in ``nf_instances`` (and purge the entries under
    the keys an instance moves between); entries of archived instances whose record is gone
    stay. A record that changed while its entry was written is indexed again (a step may
    have written its entry in between). Returns the number of records indexed."""
    keys = await list_kv_keys(js, layout.BUCKET_INSTANCES)
    done = 0
    for start in range(0, len(keys), batch):
        chunk = keys[start : start + batch]
        for _ in range(3):
            got = await asyncio.gather(*(_entry(records, k) for k in chunk))
            ops: list[IndexWrite] = []
            for value, _revision in got:
                state = _decode(value)
                if state is not None:
                    ops.extend(index.repair(state, index.entry(state)))
            await index.send(ops)
            after = await asyncio.gather(*(_entry(records, k) for k in chunk))
            moved = [k for k, (_, a), (_, b) in zip(chunk, got, after, strict=True) if a != b]
            done += len(chunk) - len(moved)
            chunk = moved
            if not chunk:
                break
    return done


def _decode(value: bytes | None) -> r.InstanceState | None:
    if value is None:
        return None
    try:
        return r.decode_state(value)
    except msgspec.DecodeError:
        return None


async def _entry(kv: KeyValue, key: str) -> tuple[bytes | None, int | None]:
    try:
        entry = await kv.get(key)
    except Exception:  # KeyNotFoundError: removed meanwhile
        return None, None
    return entry.value or None, entry.revision
