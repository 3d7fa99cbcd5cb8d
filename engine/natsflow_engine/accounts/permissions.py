"""The permissions natsflow mints for the users of a tenant account.

A worker of one task type may do exactly what the worker SDK does, and nothing else:

- publish its results: ``nf.cmd.<tenant>.>`` (job results are commands to the engine);
- pull and acknowledge jobs of its own consumer: ``$JS.API.CONSUMER.MSG.NEXT.NF_JOBS.<consumer>``
  and ``$JS.ACK.NF_JOBS.<consumer>.>`` (acks, naks and progress signals);
- read the configuration of what it checks at start: ``$JS.API.CONSUMER.INFO`` of its consumer
  and of the engine consumer, ``$JS.API.STREAM.INFO.*`` (``Worker.start`` verifies that the
  streams and buckets exist; stream info carries configuration and counts, never a message, and
  in an account of its own tenant names only that tenant's streams);
- receive replies only under its own inbox prefix (``nats.connect(inbox_prefix=...)``), never
  ``_INBOX.>``, where replies meant for other users of the account arrive.

It cannot read or write KV, read history, create, delete or pull any other consumer, or
subscribe to anything but its inbox.
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
            f"nf.cmd.{tenant}.>",
            f"$JS.API.CONSUMER.MSG.NEXT.{layout.STREAM_JOBS}.{consumer}",
            f"$JS.ACK.{layout.STREAM_JOBS}.{consumer}.>",
            f"$JS.API.CONSUMER.INFO.{layout.STREAM_JOBS}.{consumer}",
            f"$JS.API.CONSUMER.INFO.{layout.STREAM_COMMANDS}.{layout.ENGINE_CONSUMER}",
            "$JS.API.STREAM.INFO.*",
        ],
        subscribe=[f"{worker_inbox_prefix(tenant, task_type)}.>"],
    )
