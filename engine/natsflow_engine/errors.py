"""The error tree of natsflow.

Every error natsflow raises on purpose derives from :class:`NatsflowError`::

    NatsflowError
    ├── BpmnValidationError      a model cannot be deployed (carries every issue found)
    ├── ExpressionError
    │   ├── FeelSyntaxError      an expression does not parse (names expression and column)
    │   └── FeelEvaluationError  an expression failed while evaluating
    │       └── FeelBudgetError  it went past its budget of steps or a size cap
    ├── BpmnError                thrown by a worker: a business error the model may catch
    ├── NotFoundError            an instance, definition or task does not exist
    ├── ConflictError            a concurrent change won; reload and retry
    ├── PayloadTooLargeError     a variables payload exceeds the configured limit
    ├── InvalidNameError         a name or id is too long or uses characters it may not (also a ValueError)
    └── ConnectionFailedError    NATS could not be reached or answered an error

Library errors (nats-py, lxml) are converted at the boundary with ``raise ... from``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "BpmnError",
    "BpmnValidationError",
    "ConflictError",
    "ConnectionFailedError",
    "ExpressionError",
    "FeelBudgetError",
    "FeelEvaluationError",
    "FeelSyntaxError",
    "InvalidNameError",
    "NatsflowError",
    "NotFoundError",
    "PayloadTooLargeError",
    "ValidationIssue",
]


class NatsflowError(Exception):
    """Root of every error natsflow raises on purpose."""


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    """One problem in a BPMN document: which element, which source line, which rule."""

    element_id: str | None
    line: int | None
    message: str

    def __str__(self) -> str:
        where = []
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.element_id:
            where.append(f"element '{self.element_id}'")
        prefix = ", ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message


class BpmnValidationError(NatsflowError):
    """The model cannot be deployed. ``errors`` lists every issue found, not only the first."""

    def __init__(self, errors: list[ValidationIssue], source: str | None = None) -> None:
        self.errors = list(errors)
        self.source = source
        head = f"{source}: " if source else ""
        if len(self.errors) == 1:
            text = f"{head}invalid BPMN: {self.errors[0]}"
        else:
            lines = "\n".join(f"  - {issue}" for issue in self.errors)
            text = f"{head}invalid BPMN ({len(self.errors)} problems):\n{lines}"
        super().__init__(text)


class ExpressionError(NatsflowError):
    """A FEEL expression could not be compiled or evaluated."""


class FeelSyntaxError(ExpressionError):
    """The expression does not parse. ``column`` is 1-based within ``expression``."""

    def __init__(self, expression: str, column: int, message: str) -> None:
        self.expression = expression
        self.column = column
        self.message = message
        super().__init__(f"FEEL syntax error at column {column} of '{expression}': {message}")


class FeelEvaluationError(ExpressionError):
    """The expression failed at evaluation (for example a function called with bad arguments)."""

    def __init__(self, expression: str, message: str) -> None:
        self.expression = expression
        self.message = message
        super().__init__(f"failed to evaluate '{expression}': {message}")


class FeelBudgetError(FeelEvaluationError):
    """The expression went past its evaluation budget (``limit`` names which one, e.g.
    ``max_steps``, and ``value`` its value); see ``natsflow_engine.feel.limits``."""

    def __init__(self, expression: str, message: str, limit: str, value: int) -> None:
        self.limit = limit
        self.value = value
        super().__init__(expression, message)


class BpmnError(NatsflowError):
    """A business error thrown by a worker; caught by an error boundary or event sub-process.

    Uncaught, it raises an incident on the instance (Camunda 8 semantics).
    """

    def __init__(self, code: str, message: str = "", variables: dict[str, Any] | None = None) -> None:
        self.code = code
        self.message = message
        self.variables = dict(variables or {})
        super().__init__(f"BPMN error '{code}'" + (f": {message}" if message else ""))


class NotFoundError(NatsflowError):
    """The instance, definition, task or incident does not exist."""


class ConflictError(NatsflowError):
    """A concurrent change won the race."""


class PayloadTooLargeError(NatsflowError):
    """A payload is larger than the configured limit."""


class InvalidNameError(NatsflowError, ValueError):
    """A value that becomes part of a NATS subject, key or consumer name is refused where it
    enters: ``field`` names it, ``rule`` says what it must be (the limits are listed in
    :mod:`natsflow_engine.layout`)."""

    def __init__(self, field: str, value: str, rule: str) -> None:
        self.field = field
        self.rule = rule
        shown = value if len(value) <= 40 else f"{value[:40]}... ({len(value)} characters)"
        super().__init__(f"invalid {field} {shown!r}: {rule}")


class ConnectionFailedError(NatsflowError):
    """NATS could not be reached, or answered with an error."""
