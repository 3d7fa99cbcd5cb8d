"""The worker SDK (public). See :mod:`natsflow.engine.worker` for the details."""

from natsflow.engine.runtime.setup import JobConsumerSettings
from natsflow.engine.worker import BpmnError, Job, Worker

__all__ = ["BpmnError", "Job", "JobConsumerSettings", "Worker"]
