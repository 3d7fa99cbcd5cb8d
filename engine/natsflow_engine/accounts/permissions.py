"""The permissions natsflow mints for the users of a tenant account.

A worker of one task type may do exactly what the worker SDK does, and nothing else:

- publish the results of its task type's jobs: ``nf.cmd.<tenant>.*.<task type token>`` (the
  engine refuses a result there that does not answer a job of that type, and any other
  command);
- pull and acknowledge jobs of its own consumer: ``$JS.API.CONSUMER.MSG.NEXT.NF_JOBS.<consumer>``
  and ``$JS.ACK.NF_JOBS.<consumer>.>`` (acks, naks and progress signals);
- read its consumer's configuration (``$JS.API.CONSUMER.INFO`` of its consumer: retries,
  backoff and ack wait; ``Worker.start`` reads nothing else when the consumer exists);
- receive replies only under its own inbox prefix (``nats.connect(inbox_prefix=...)``), never
  ``_INBOX.>``, where replies meant for other users of the account arrive.

It cannot send any other command (launch, cancel, complete a user task, results of other task
types), read or write KV, read history or stream information, create, delete or pull any
other consumer, or subscribe to anything but its inbox.
"""

from __future__ import annotations

from natsflow_engine import layout
from natsflow_engine.accounts.jwt import Permissions

__all__ = ["worker_inbox_prefix", "worker_permissions"]


def worker_inbox_prefix(tenant: str, task_type: str) -> str:
    """The inbox prefix of a task type's workers: ``_INBOX_<consumer name>`` (one token, so it
    is outside ``_INBOX.>``)."""
    return f"_INBOX_{layout.job_consumer(layout.validate_tenant(tenant), task_type)}"


def worker_permissions(tenant: str, task_type: str) -> Permissions:
    """What a worker serving ``task_type`` of ``tenant`` may publish and subscribe to; connect it
    with ``inbox_prefix=worker_inbox_prefix(tenant, task_type)``."""
    consumer = layout.job_consumer(layout.validate_tenant(tenant), task_type)
    return Permissions(
        publish=[
            layout.result_subjects(tenant, task_type),
            f"$JS.API.CONSUMER.MSG.NEXT.{layout.STREAM_JOBS}.{consumer}",
            f"$JS.ACK.{layout.STREAM_JOBS}.{consumer}.>",
            f"$JS.API.CONSUMER.INFO.{layout.STREAM_JOBS}.{consumer}",
        ],
        subscribe=[f"{worker_inbox_prefix(tenant, task_type)}.>"],
    )
