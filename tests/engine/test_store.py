"""The store's compare-and-set: one retry policy, and a typed outcome when every try loses."""

from __future__ import annotations

import pytest
from nats.aio.client import Client
from natsflow_engine.errors import ConflictError
from natsflow_engine.store import ConcurrentUpdateError, RetryPolicy, compare_and_set


async def test_compare_and_set_creates_updates_and_keeps(nc: Client, unique: str) -> None:
    kv = await nc.jetstream().create_key_value(bucket=f"cas_{unique}")

    async def add_one(current: bytes | None) -> bytes:
        return str(int(current or b"0") + 1).encode()

    async def keep(current: bytes | None) -> None:
        return None

    first = await compare_and_set(kv, "n", add_one)
    second = await compare_and_set(kv, "n", add_one)
    kept = await compare_and_set(kv, "n", keep)
    assert (first.value, first.changed) == (b"1", True)
    assert (second.value, second.changed) == (b"2", True)
    assert (kept.value, kept.changed, kept.revision) == (b"2", False, second.revision)
    await nc.jetstream().delete_key_value(f"cas_{unique}")


async def test_a_writer_that_always_wins_exhausts_the_policy_with_a_typed_error(nc: Client, unique: str) -> None:
    kv = await nc.jetstream().create_key_value(bucket=f"cas_{unique}")
    tries = 0

    async def loses_every_race(current: bytes | None) -> bytes:
        nonlocal tries
        tries += 1
        await kv.put("n", f"other {tries}".encode())  # a concurrent writer gets in between
        return b"mine"

    with pytest.raises(ConcurrentUpdateError) as exhausted:
        await compare_and_set(kv, "n", loses_every_race, RetryPolicy(attempts=3))
    assert tries == 3
    assert exhausted.value.key == "n" and exhausted.value.attempts == 3
    assert isinstance(exhausted.value, ConflictError)  # the API answers `conflict`
    assert (await kv.get("n")).value == b"other 3"
    await nc.jetstream().delete_key_value(f"cas_{unique}")
