"""The errors users catch (public). The tree lives in :mod:`natsflow_engine.errors`."""

from natsflow_engine.errors import (
    BpmnError,
    BpmnValidationError,
    ConflictError,
    ConnectionFailedError,
    ExpressionError,
    FeelEvaluationError,
    FeelSyntaxError,
    NatsflowError,
    NotFoundError,
    PayloadTooLargeError,
    ValidationIssue,
)

__all__ = [
    "BpmnError",
    "BpmnValidationError",
    "ConflictError",
    "ConnectionFailedError",
    "ExpressionError",
    "FeelEvaluationError",
    "FeelSyntaxError",
    "NatsflowError",
    "NotFoundError",
    "PayloadTooLargeError",
    "ValidationIssue",
]
