"""The process test kit (public). See :mod:`natsflow.engine.testing` for the details."""

from natsflow.engine.server import EmbeddedNatsServer
from natsflow.engine.testing import (
    IncidentView,
    InstanceSnapshot,
    ProcessTestEngine,
    UserTaskView,
    VirtualClock,
)

__all__ = [
    "EmbeddedNatsServer",
    "IncidentView",
    "InstanceSnapshot",
    "ProcessTestEngine",
    "UserTaskView",
    "VirtualClock",
]
