"""The process test kit (public). See :mod:`natsflow_engine.testing` for the details."""

from natsflow_engine.server import EmbeddedNatsServer
from natsflow_engine.testing import (
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
