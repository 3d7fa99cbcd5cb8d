"""Small helpers over nats-py where its own API falls short."""

from __future__ import annotations

from nats.js.kv import KeyValue

__all__ = ["list_keys"]


async def list_keys(kv: KeyValue, pattern: str = ">") -> list[str]:
    """Keys matching a subject-style ``pattern`` (``*`` one token, ``>`` the rest), in the
    order they were last written. The server filters (nats-py's ``keys(filters=)`` matches
    substrings on the client after fetching every key)."""
    watcher = await kv.watch(pattern, ignore_deletes=True, meta_only=True)
    keys: list[str] = []
    try:
        async for entry in watcher:
            if entry is None:
                break
            keys.append(entry.key)
    finally:
        await watcher.stop()
    return keys
