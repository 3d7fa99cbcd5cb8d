"""Commands the engine cannot apply: kept in the dead-letter stream, with an incident.

A command that fails every time it is applied (the engine raised, or crashed, on each of its
``LayoutSettings.command_max_deliver`` deliveries) or that can never be applied (it does not
decode, its instance does not exist) is republished to ``nf.dlq.<tenant>.cmd.<instance>`` in
``NF_DLQ`` with its original payload and these headers::

    Natsflow-Dead-Letter-Reason   why
    Natsflow-Tenant               the tenant of the command subject
    Natsflow-Instance             the instance of the command subject
    Natsflow-Source-Subject       the command subject
    Natsflow-Source-Sequence      NF_CMD:<sequence>

and, where the instance exists, an incident (kind ``dead-letter``) on it names the command and
the reason; a launch that never became an instance becomes a failed instance with that
incident. Only when the dead letter is stored is the command taken off the command stream: a
command is never dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

import msgspec
from nats.js import JetStreamContext

from natsflow_engine import layout
from natsflow_engine.runtime import records as r
from natsflow_engine.runtime.interpreter import engine_incident, failed_launch
from natsflow_engine.runtime.origin import keep_dead_letter
from natsflow_engine.store import Effect, InstanceStore

__all__ = ["DeadLetters"]

log = logging.getLogger(__name__)



class DeadLetters:
    """Dead-letters commands of the engine's command stream (see the module docstring)."""

    def __init__(self, js: JetStreamContext, store: InstanceStore, clock: Callable[[], datetime]) -> None:
        self.js = js
        self.store = store
        self.clock = clock

    async def keep(self, subject: str, data: bytes, sequence: int, reason: str) -> None:
        """Store the command on its dead-letter subject (idempotent per stream sequence); raises
        when no stream stores it (the caller leaves the command where it is)."""
        await keep_dead_letter(self.js, subject, data, sequence, reason)
        log.error("command %s:%d on %s dead-lettered: %s", layout.STREAM_COMMANDS, sequence, subject, reason)

    async def incident(self, data: bytes, reason: str) -> None:
        """Raise an incident for the command on its instance (a launch: a failed instance).
        Best effort: the dead letter is the record that counts."""
        try:
            cmd = r.command_decoder.decode(data)
        except msgspec.DecodeError:
            return  # no instance to tell
        key = layout.instance_key(cmd.tenant, cmd.instance)
        message = f"command {cmd.id} ({type(cmd).__name__}) was dead-lettered: {reason}"
        try:
            for _ in range(5):
                state, revision = await self.store.load(key)
                if state is None:
                    if not isinstance(cmd, r.Launch):
                        return
                    result = failed_launch(cmd, message, self.clock(), kind="dead-letter")
                elif cmd.id in state.applied:
                    return
                else:
                    result = engine_incident(state, cmd, message, self.clock(), kind="dead-letter")
                outbox: list[Effect] = [*result.effects]
                if result.history is not None:
                    outbox.append(result.history)
                at = self.clock().isoformat()
                if await self.store.commit(key, revision, cmd.id, result.state, outbox, at):
                    return
        except Exception as exc:  # the record itself may be what fails: the dead letter stays
            log.error("no incident for dead-lettered command %s of %s: %s", cmd.id, key, exc)
