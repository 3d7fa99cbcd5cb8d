"""natsflow: BPMN 2.0 workflows on NATS JetStream.

The public surface is small; everything else is private and may change:

- this module: the errors users catch and ``__version__``;
- :mod:`natsflow.worker`: the worker SDK (``Worker``, ``Job``, ``BpmnError``);
- :mod:`natsflow.testing`: the process test kit (``ProcessTestEngine``) and its pytest plugin;
- :mod:`natsflow.client`: the request-reply API client (``ApiClient``);
- the ``natsflow`` command line.
"""

from importlib.metadata import PackageNotFoundError, version

from natsflow.errors import (
    BpmnError,
    BpmnValidationError,
    ConflictError,
    ConnectionFailedError,
    ExpressionError,
    FeelEvaluationError,
    FeelSyntaxError,
    ForbiddenError,
    InvalidInputError,
    NatsflowError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionViolationError,
    UnsupportedError,
    ValidationIssue,
)

try:
    __version__ = version("natsflow")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = [
    "BpmnError",
    "BpmnValidationError",
    "ConflictError",
    "ConnectionFailedError",
    "ExpressionError",
    "FeelEvaluationError",
    "FeelSyntaxError",
    "ForbiddenError",
    "InvalidInputError",
    "NatsflowError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionViolationError",
    "UnsupportedError",
    "ValidationIssue",
    "__version__",
]
