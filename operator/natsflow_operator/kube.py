"""A small asynchronous Kubernetes API client for what Kopf does not do for us.

Kopf watches our custom resources and patches them from handlers; the operator itself also
reads Secrets and ConfigMaps, manages the worker Deployments and writes status from the
autoscaler daemon. Rather than adding a second Kubernetes client library, this module talks to
the API server with aiohttp, using the credentials Kopf's login produced (any object with
``server``, ``as_http_headers()`` and ``as_ssl_context()``, such as ``kopf.ConnectionInfo``).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any, Protocol

import aiohttp
from natsflow_engine.errors import KubeError

__all__ = ["Credentials", "KubeClient", "KubeError", "paths"]

log = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"


class Credentials(Protocol):
    """What the client needs from ``kopf.ConnectionInfo``."""

    @property
    def server(self) -> str: ...

    def as_http_headers(self) -> dict[str, str]: ...

    def as_ssl_context(self) -> ssl.SSLContext: ...


class paths:
    """URL paths of the objects the operator touches."""

    @staticmethod
    def secret(namespace: str, name: str) -> str:
        return f"/api/v1/namespaces/{namespace}/secrets/{name}"

    @staticmethod
    def secrets(namespace: str) -> str:
        return f"/api/v1/namespaces/{namespace}/secrets"

    @staticmethod
    def tenant(name: str) -> str:
        return f"/apis/natsflow.io/v1alpha1/tenants/{name}"

    @staticmethod
    def service_account(namespace: str, name: str) -> str:
        return f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}"

    @staticmethod
    def configmap(namespace: str, name: str) -> str:
        return f"/api/v1/namespaces/{namespace}/configmaps/{name}"

    @staticmethod
    def deployments(namespace: str) -> str:
        return f"/apis/apps/v1/namespaces/{namespace}/deployments"

    @staticmethod
    def deployment(namespace: str, name: str, subresource: str | None = None) -> str:
        tail = f"/{subresource}" if subresource else ""
        return f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}{tail}"

    @staticmethod
    def custom_list(group: str, version: str, plural: str, namespace: str) -> str:
        return f"/apis/{group}/{version}/namespaces/{namespace}/{plural}"

    @staticmethod
    def custom(
        group: str, version: str, plural: str, namespace: str, name: str, sub: str | None = None
    ) -> str:
        tail = f"/{sub}" if sub else ""
        return f"/apis/{group}/{version}/namespaces/{namespace}/{plural}/{name}{tail}"


class KubeClient:
    """JSON requests to one API server; credentials can be replaced when Kopf logs in again."""

    def __init__(self, timeout: float = 30.0, user_agent: str = "natsflow-operator") -> None:
        self._user_agent = user_agent
        self._credentials: Credentials | None = None
        self._session: aiohttp.ClientSession | None = None
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._ready = asyncio.Event()
        self._closed = False
        self._retired: list[aiohttp.ClientSession] = []

    def set_credentials(self, credentials: Credentials) -> None:
        """Use these credentials from now on (called from the operator's login handler)."""
        self._credentials = credentials
        if self._session is not None:
            self._retired.append(self._session)  # requests in flight finish; closed in close()
            self._session = None
        self._ready.set()

    async def logged_in(self) -> bool:
        """Readiness: credentials arrived and the client is open."""
        return self._credentials is not None and not self._closed

    async def _client(self) -> tuple[aiohttp.ClientSession, str]:
        await self._ready.wait()
        if self._closed:
            raise KubeError(503, "-", "-", "the Kubernetes client is closed (shutting down)")
        creds = self._credentials
        assert creds is not None
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=creds.as_ssl_context()),
                headers={**creds.as_http_headers(), "User-Agent": self._user_agent},
                timeout=self._timeout,
            )
        return self._session, creds.server.rstrip("/")

    async def request(
        self, method: str, path: str, body: Any = None, *, content_type: str = "application/json"
    ) -> Any:
        """Send one request; return the decoded JSON body, raise :class:`KubeError` on errors."""
        session, server = await self._client()
        data = None if body is None else aiohttp.JsonPayload(body, content_type=content_type)
        async with session.request(method, server + path, data=data) as response:
            if response.status >= 400:
                try:
                    payload = await response.json(content_type=None)
                    message = str(payload.get("message", payload))
                except (ValueError, aiohttp.ContentTypeError):
                    message = await response.text()
                raise KubeError(response.status, method, path, message)
            if response.content_length == 0:
                return None
            return await response.json(content_type=None)

    async def get(self, path: str) -> dict[str, Any] | None:
        """The object, or ``None`` when it does not exist."""
        try:
            found: dict[str, Any] = await self.request("GET", path)
        except KubeError as exc:
            if exc.not_found:
                return None
            raise
        return found

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        created: dict[str, Any] = await self.request("POST", path, body)
        return created

    async def merge_patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        patched: dict[str, Any] = await self.request("PATCH", path, body, content_type=MERGE_PATCH)
        return patched

    async def json_patch(self, path: str, ops: list[dict[str, Any]]) -> dict[str, Any]:
        """RFC 6902 operations (``add`` replaces an existing member)."""
        patched: dict[str, Any] = await self.request("PATCH", path, ops, content_type=JSON_PATCH)
        return patched

    async def delete(self, path: str) -> bool:
        """Delete; ``False`` when it was already gone."""
        try:
            await self.request("DELETE", path)
        except KubeError as exc:
            if exc.not_found:
                return False
            raise
        return True

    async def close(self) -> None:
        self._closed = True
        sessions, self._retired = [*self._retired, self._session], []
        self._session = None
        for session in sessions:
            if session is not None and not session.closed:
                await session.close()
