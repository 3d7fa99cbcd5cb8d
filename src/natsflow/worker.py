"""The worker SDK (public). See :mod:`natsflow_engine.worker` for the details."""

from natsflow_engine.runtime.setup import JobConsumerSettings
from natsflow_engine.worker import BpmnError, Job, JobFailure, RetryBackoff, Worker

__all__ = ["BpmnError", "Job", "JobConsumerSettings", "JobFailure", "RetryBackoff", "Worker"]
