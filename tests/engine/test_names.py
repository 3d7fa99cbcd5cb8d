"""Names of NATS objects are bounded and injective; values outside the limits are refused with
a typed error naming the field and the limit (see the limits in natsflow_engine.layout)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig
from nats.js.errors import NotFoundError
from natsflow_engine import layout
from natsflow_engine.errors import InvalidNameError
from natsflow_engine.runtime.setup import delete_job_consumer, ensure_job_consumer, ensure_layout
from natsflow_engine.worker import Worker

TENANTS = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")
TEXT = st.text(max_size=300) | st.sampled_from(["", "\x00", "=00", "==", "a-b", "b-c", "a.b", "é", "x" * 200])
# the control line of nats-server is 4 KiB; a subject or key must stay far below it
BOUND = 600


@given(st.lists(st.tuples(TENANTS, TEXT), min_size=2, max_size=6, unique=True))
def test_task_type_names_are_injective_and_bounded(pairs: list[tuple[str, str]]) -> None:
    for name in (layout.job_consumer, layout.job_subject, layout.taskdef_key, layout.trigger_consumer):
        made = [name(tenant, task_type) for tenant, task_type in pairs]
        assert len(set(made)) == len(pairs), made
        assert all(len(m) <= 255 for m in made)  # consumer names: at most 255 characters


@given(st.lists(st.tuples(TENANTS, TEXT, TEXT), min_size=2, max_size=6, unique=True))
def test_process_and_key_names_are_injective_and_bounded(triples: list[tuple[str, str, str]]) -> None:
    names = (
        layout.message_subscriptions_key,
        layout.message_buffer_key,
        layout.message_start_key,
        lambda t, p, k: layout.workflow_latest_key(t, p) + "|" + layout.signal_subscriptions_key(t, k),
    )
    for name in names:
        made = [name(*triple) for triple in triples]
        assert len(set(made)) == len(triples), made
        assert all(len(m) <= BOUND for m in made)


@given(TEXT, TEXT)
def test_tokens_are_injective_and_fit_a_subject_token(a: str, b: str) -> None:
    if a != b:
        assert layout.token(a) != layout.token(b)
    token = layout.token(a)
    assert len(token) <= layout.MAX_TOKEN
    assert all(c.isascii() and (c.isalnum() or c in "_-=") for c in token)


def test_the_reported_collisions_are_gone() -> None:
    assert layout.job_consumer("a-b", "c") != layout.job_consumer("a", "b-c")
    assert layout.legacy_trigger_consumer("a-b", "c") == layout.legacy_trigger_consumer("a", "b-c")
    assert layout.trigger_consumer("a-b", "c") != layout.trigger_consumer("a", "b-c")
    assert layout.token("") != layout.token("\x00")
    assert layout.token("x" * 5000) == layout.token("x" * 5000)
    assert layout.token("x" * 5000) != layout.token("x" * 4999)


def test_short_tokens_are_unchanged_so_existing_keys_stay_valid() -> None:
    assert layout.token("") == "=00"
    assert layout.token("order paid") == "order=20paid"
    assert layout.token("ship-it_2") == "ship-it_2"


@pytest.mark.parametrize(
    ("check", "value", "field", "limit"),
    [
        (lambda v: layout.check_name("task type", v), "t" * 256, "task type", "255"),
        (lambda v: layout.check_name("message name", v), "a\x00b", "message name", "control"),
        (lambda v: layout.check_name("process id", v), "", "process id", "1 to 255"),
        (lambda v: layout.check_id("instance", v), "a.b", "instance", "64"),
        (lambda v: layout.check_id("instance", v), "i" * 65, "instance", "64"),
        (lambda v: layout.check_compound_id("task", v, 2), "x.y", "task", "<instance>.<number>"),
        (layout.validate_tenant, "a_b", "tenant", "63"),
    ],
)
def test_values_outside_the_limits_are_refused_with_a_typed_error(
    check: Callable[[str], object], value: str, field: str, limit: str
) -> None:
    with pytest.raises(InvalidNameError) as raised:
        check(value)
    assert raised.value.field == field
    assert field in str(raised.value) and limit in str(raised.value)
    assert isinstance(raised.value, ValueError)  # still what callers of validate_tenant catch


def test_values_inside_the_limits_pass() -> None:
    assert layout.check_name("task type", "t" * 255) == "t" * 255
    assert layout.check_name("business key", "", empty=True) == ""
    assert layout.check_id("instance", "0000000000000000beef") == "0000000000000000beef"
    assert layout.check_compound_id("incident", "abc.2.17", 3) == "abc.2.17"


def test_worker_refuses_a_task_type_over_the_limit_at_registration() -> None:
    worker = Worker(tenant="default")
    with pytest.raises(InvalidNameError, match="task type"):
        worker.task("t" * 5000)


async def test_a_job_consumer_under_its_old_name_is_replaced_keeping_its_jobs_and_settings(
    nc: Client, unique: str
) -> None:
    js = nc.jetstream()
    await ensure_layout(js)
    tenant, task_type = f"t-{unique}", "ship"
    legacy = layout.legacy_job_consumer(tenant, task_type)
    await js.add_consumer(
        layout.STREAM_JOBS,
        ConsumerConfig(
            durable_name=legacy,
            filter_subject=layout.job_subject(tenant, task_type),
            ack_policy=AckPolicy.EXPLICIT,
            max_deliver=7,
        ),
    )
    await js.publish(layout.job_subject(tenant, task_type), b"{}")
    name = await ensure_job_consumer(js, tenant, task_type, update=False)
    assert name == layout.job_consumer(tenant, task_type) != legacy
    info = await js.consumer_info(layout.STREAM_JOBS, name)
    assert info.num_pending == 1 and info.config.max_deliver == 7
    with pytest.raises(NotFoundError):
        await js.consumer_info(layout.STREAM_JOBS, legacy)
    await delete_job_consumer(js, tenant, task_type)
