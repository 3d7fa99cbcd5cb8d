"""User credentials expire and are re-issued before they do: with a six-second lifetime the
operator re-issues after about two, the old JWT stops working at its expiry, the new one works;
the platform user's and the remote sites' credentials are re-issued the same way."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import kmock
import pytest
from natsflow_engine.accounts.permissions import worker_inbox_prefix
from natsflow_operator.context import OperatorConfig
from natsflow_operator.kube import paths
from natsflow_operator.sites import CREDS_KEY, site_secret_name
from natsflow_operator.tenancy import TenancyConfig, creds_claims, stamp
from natsflow_operator.workercreds import USER_ANNOTATION
from tenants_kit import (
    DEADLINE,
    PLATFORM,
    OperatorMode,
    connect,
    connected,
    operator_mode,
    platform_creds,
    secret_value,
    start,
    td_ready,
    tenancy_config,
    worker_creds,
)

__all__ = ["operator_mode"]  # the module's server fixture

TTL = 6.0


@pytest.fixture
def operator_config(k8s: kmock.KubernetesEmulator, operator_mode: OperatorMode) -> OperatorConfig:
    return tenancy_config(
        k8s, operator_mode, TenancyConfig(namespace=PLATFORM, user_ttl=TTL, renew_before=TTL - 2)
    )


async def test_user_credentials_are_reissued_before_they_expire(
    running: Any, operator_mode: OperatorMode, unique: str
) -> None:
    a = f"{unique}a"
    await start(running, operator_mode, a, sites=[{"name": "dc1", "taskTypes": ["pay"]}])
    site_path = paths.secret(a, site_secret_name("dc1"))
    old_site = creds_claims(str(secret_value(await running.api.client.get(site_path), CREDS_KEY)))
    await running.api.create("TaskDefinition", a, "pay", {"taskType": "pay"})
    await td_ready(running, a, "pay")
    first = await worker_creds(running, a, "pay")
    old = str(secret_value(first, "creds"))
    old_claims = creds_claims(old)
    assert old_claims["exp"] - old_claims["iat"] == TTL
    old_platform = await platform_creds(running.api.client, a)
    assert old_platform is not None
    conn = await connect(operator_mode.url, old, inbox_prefix=worker_inbox_prefix(a, "pay"))
    try:

        async def reissued() -> dict[str, Any] | None:
            found = await running.api.client.get(paths.secret(a, "pay-worker-nats"))
            creds = secret_value(found, "creds")
            return found if creds and creds_claims(creds)["exp"] > old_claims["exp"] else None

        renewed = await running.eventually(reissued, timeout=DEADLINE)
        # the same user key with a later JWT: revoking the key revokes every JWT issued for it
        new = str(secret_value(renewed, "creds"))
        assert (
            creds_claims(new)["sub"]
            == old_claims["sub"]
            == renewed["metadata"]["annotations"][USER_ANNOTATION]
        )
        assert creds_claims(new)["nats"]["pub"] == old_claims["nats"]["pub"]
        # the server ends the connection of the expired JWT
        await asyncio.wait_for(conn.closed.wait(), TTL + DEADLINE)
        assert time.time() >= old_claims["exp"] - 1
    finally:
        await conn.nc.close()
    latest = str(secret_value(await worker_creds(running, a, "pay"), "creds"))
    async with connected(operator_mode.url, latest, inbox_prefix=worker_inbox_prefix(a, "pay")) as fresh:
        await fresh.nc.flush(timeout=5)

    async def platform_reissued() -> str | None:
        creds = await platform_creds(running.api.client, a)
        return creds if creds and creds_claims(creds)["exp"] > creds_claims(old_platform)["exp"] else None

    await running.eventually(platform_reissued, timeout=DEADLINE)

    async def site_reissued() -> dict[str, Any] | None:  # the same user key, reported in the status
        claims = creds_claims(str(secret_value(await running.api.client.get(site_path), CREDS_KEY)))
        obj = await running.api.client.get(paths.tenant(a))
        (entry,) = (obj or {}).get("status", {}).get("sites") or [{}]
        renewed = claims["exp"] > old_site["exp"] and entry.get("credentialsExpireAt") == stamp(claims["exp"])
        return claims if renewed else None

    site = await running.eventually(site_reissued, timeout=DEADLINE)
    assert site["sub"] == old_site["sub"] and site["nats"]["pub"] == old_site["nats"]["pub"]
