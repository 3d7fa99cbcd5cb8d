"""From a NATS message to launch parameters: variables and the idempotency key.

A :class:`TriggerMapping` is compiled once per trigger revision. For each message it builds the
FEEL context ``{"payload": <decoded JSON>, "headers": {...}, "subject": str}`` and evaluates

- every ``variables`` entry (name -> FEEL expression); without entries, a JSON object payload
  becomes the variables as it is;
- the idempotency key: the ``idempotency_header`` value, else the ``idempotency_expression``
  result, else ``<stream>:<sequence>`` of the message (so redeliveries still launch once).

A message that cannot be mapped raises :class:`MessageRejectedError` (it goes to the dead-letter subject),
an expression that goes past its FEEL budget included (``natsflow_engine.feel.limits``).
``now()``/``today()`` read the clock given per message, by default the wall clock read here, at
the trigger server's boundary (FEEL itself never reads it).
A trigger whose expressions do not compile raises :class:`MappingConfigError` at compile time
(the trigger stops consuming until it is fixed; its messages wait in the stream).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

from natsflow_engine.catalog import TriggerRecord
from natsflow_engine.errors import MappingConfigError, MessageRejectedError, NatsflowError
from natsflow_engine.feel import CompiledExpression, compile_expression, to_json_value

__all__ = ["MappingConfigError", "MessageRejectedError", "TriggerMapping"]


def _compile(what: str, source: str) -> CompiledExpression:
    text = source[1:] if source.startswith("=") else source
    try:
        return compile_expression(text)
    except NatsflowError as exc:
        raise MappingConfigError(f"{what}: {exc}") from exc


def _key_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value or None
    if isinstance(value, bool):
        return "true" if value else "false"
    return msgspec.json.encode(to_json_value(value), order="sorted").decode()


def wall_clock() -> datetime:
    """The trigger server's clock for ``now()`` in mappings (outside the engine's steps)."""
    return datetime.now(UTC)


class TriggerMapping:
    """Compiled expressions of one trigger revision; ``clock`` gives ``now()`` per message."""

    def __init__(self, record: TriggerRecord, clock: Callable[[], datetime] = wall_clock) -> None:
        self.clock = clock
        self.variables = {name: _compile(f"variable {name!r}", src) for name, src in record.variables.items()}
        self.key_header = record.idempotency_header or None
        self.key_expression = (
            _compile("idempotency expression", record.idempotency_expression)
            if record.idempotency_expression
            else None
        )

    @staticmethod
    def context(data: bytes, headers: Mapping[str, str] | None, subject: str) -> dict[str, Any]:
        """The FEEL context of a message; an empty body is ``null``, anything else must be JSON."""
        payload: Any = None
        if data.strip():
            try:
                payload = msgspec.json.decode(data)
            except msgspec.DecodeError as exc:
                raise MessageRejectedError("payload", f"payload is not JSON: {exc}") from None
            except RecursionError:
                raise MessageRejectedError("payload", "payload is nested too deeply") from None
        return {"payload": payload, "headers": dict(headers or {}), "subject": subject}

    def map_variables(self, ctx: Mapping[str, Any], now: datetime | None = None) -> dict[str, Any]:
        """The variables of a message; every expression sees the same ``now`` (default: the clock)."""
        if not self.variables:
            payload = ctx.get("payload")
            return dict(payload) if isinstance(payload, dict) else {}
        out: dict[str, Any] = {}
        now = now or self.clock()
        for name, expr in self.variables.items():
            try:
                out[name] = to_json_value(expr.evaluate(ctx, now=now))
            except Exception as exc:
                raise MessageRejectedError("mapping", f"variable {name!r}: {exc}") from None
        return out

    def key(self, ctx: Mapping[str, Any], fallback: str, now: datetime | None = None) -> str:
        """The idempotency key of a message (``fallback``: ``<stream>:<sequence>``)."""
        if self.key_header:
            headers: Mapping[str, str] = ctx.get("headers") or {}
            value = headers.get(self.key_header)
            if value is None:
                wanted = self.key_header.lower()
                value = next((v for k, v in headers.items() if k.lower() == wanted), None)
            if value:
                return value
        if self.key_expression is not None:
            try:
                text = _key_text(self.key_expression.evaluate(ctx, now=now or self.clock()))
            except Exception as exc:
                raise MessageRejectedError("mapping", f"idempotency expression: {exc}") from None
            if text:
                return text
        return fallback
