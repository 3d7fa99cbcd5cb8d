"""Wire format of the catalog records the operator writes (golden JSON, version 1)."""

from __future__ import annotations

import json

from natsflow_engine import catalog, layout

TASKDEF_V1 = (
    '{"tenant":"shop","task_type":"charge card","name":"charge","consumer":"job-shop-charge=20card",'
    '"subject":"nf.job.shop.charge=20card","concurrency":20,"timeout":30.0,"backoff":[5.0,30.0],'
    '"module":"tasks:app","generation":3}'
)
TRIGGER_V1 = (
    '{"tenant":"shop","name":"orders","subject":"shop.orders.created","stream":"NF_TRG_shop=2eorders=2ecreated",'
    '"consumer":"trg-shop-orders","process_id":"order-process","variables":{"id":"payload.id"},'
    '"idempotency_header":"Nats-Msg-Id","captured":true}'
)


def test_taskdef_record_golden() -> None:
    record = catalog.TaskDefRecord(
        tenant="shop",
        task_type="charge card",
        name="charge",
        consumer="job-shop-charge=20card",
        subject="nf.job.shop.charge=20card",
        concurrency=20,
        timeout=30.0,
        backoff=[5.0, 30.0],
        module="tasks:app",
        generation=3,
    )
    assert catalog.encode_record(record).decode() == TASKDEF_V1
    assert catalog.decode_taskdef(TASKDEF_V1.encode()) == record
    assert record.v == 1 and record.retries == 3


def test_trigger_record_golden_and_forward_compatible() -> None:
    record = catalog.decode_trigger(TRIGGER_V1.encode())
    assert record.stream == catalog.capture_stream("shop.orders.created")
    assert record.consumer == layout.legacy_trigger_consumer("shop", "orders")  # written before 0.2
    assert (record.v, record.suspended, record.max_deliver, record.version) == (1, False, 5, None)
    assert catalog.encode_record(record).decode() == TRIGGER_V1
    newer = json.loads(TRIGGER_V1) | {"v": 2, "a_field_from_the_future": [1, 2]}
    assert catalog.decode_trigger(json.dumps(newer).encode()).process_id == "order-process"
