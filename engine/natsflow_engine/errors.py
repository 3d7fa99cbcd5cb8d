"""The error tree of natsflow.

Every error natsflow raises on purpose derives from :class:`NatsflowError`, and each class
carries its API error code (``api_code``, shown on the right). The API server answers an
error with its class's code; the client turns the code back into the same class
(:func:`error_class`), so both sides derive the mapping from this one tree::

    NatsflowError                       internal        the root; a failure without a better class
    ├── InvalidInputError               invalid         input that can never be accepted as it is
    │   ├── BpmnValidationError         invalid.bpmn    a model cannot be deployed (every issue found)
    │   ├── ExpressionError             invalid.expression
    │   │   ├── FeelSyntaxError         invalid.expression.syntax      (names expression and column)
    │   │   └── FeelEvaluationError     invalid.expression.evaluation  an expression failed
    │   │       └── FeelBudgetError     invalid.expression.budget      it went past its budget of steps or a size cap
    │   ├── MappingConfigError          invalid.trigger a trigger's expressions do not compile
    │   ├── InvalidNameError            invalid.name    a name or id is too long or uses characters it may not
    │   ├── InvalidKeyError             invalid.nkey    an NKey seed, public key, signature or JWT is malformed
    │   └── AuthError                   invalid.users   a console users document that cannot be used
    ├── NotFoundError                   not_found       an instance, definition or task does not exist
    ├── ConflictError                   conflict        the state does not allow it, or a race was lost
    │   └── ConcurrentUpdateError       conflict.concurrent  a compare-and-set lost every try
    ├── PayloadTooLargeError            too_large       a payload exceeds the configured limit
    │   └── RecordTooLargeError         too_large.record     a step's record would exceed the bucket's limit
    ├── UnsupportedError                unsupported     this build cannot do what was asked
    ├── ForbiddenError                  forbidden       the API's authorization hook refused
    │   └── PermissionViolationError    forbidden.nats  NATS refused a publish or subscribe
    ├── ConnectionFailedError           unavailable     NATS could not be reached, or nobody answered
    ├── ApiError                        unknown         an error reply whose code this client does not know
    ├── BpmnError                       bpmn_error      thrown by a worker: a business error the model may catch
    ├── JobFailure                      job_failed      raised by a worker: the job failed (retried unless retry=False)
    ├── MessageRejectedError            rejected        a trigger message can never launch (dead-lettered)
    ├── RecordMigrationError            internal.migration   a stored record this version cannot read
    ├── ClaimsUpdateError               claims_update   the resolver refused an account JWT, or nobody answered
    ├── KubeError                       kubernetes      the Kubernetes API server answered with an error
    └── MissingReference                missing_reference  a Secret or ConfigMap a spec names does not exist

Codes are dotted: the first part is the category a client can act on (``invalid``,
``not_found``, ...); an unknown code maps to the class of its longest known prefix, else to
:class:`ApiError`. Library errors (nats-py, msgspec, lxml) are converted at the boundary with
``raise ... from``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

__all__ = [
    "ApiError",
    "AuthError",
    "BpmnError",
    "BpmnValidationError",
    "ClaimsUpdateError",
    "ConcurrentUpdateError",
    "ConflictError",
    "ConnectionFailedError",
    "ExpressionError",
    "FeelBudgetError",
    "FeelEvaluationError",
    "FeelSyntaxError",
    "ForbiddenError",
    "InvalidInputError",
    "InvalidKeyError",
    "InvalidNameError",
    "JobFailure",
    "KubeError",
    "MappingConfigError",
    "MessageRejectedError",
    "MissingReference",
    "NatsflowError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionViolationError",
    "RecordMigrationError",
    "RecordTooLargeError",
    "UnsupportedError",
    "ValidationIssue",
    "error_class",
    "error_classes",
]

Details = list[dict[str, Any]]
"""Structured fields of an error that travel with its message (``details`` of an error reply)."""


class NatsflowError(Exception):
    """Root of every error natsflow raises on purpose."""

    api_code: str = "internal"
    """The API error code of this class (distinct per class; see the module docstring)."""

    def api_details(self) -> Details | None:
        """The fields :meth:`from_api` needs to rebuild this error on the client side."""
        return None

    @classmethod
    def from_api(cls, message: str, details: Details | None) -> Self:
        """Rebuild the error from an error reply (message and details)."""
        return cls(message)

    def _with_message(self, message: str) -> Self:
        self.args = (message,)
        return self


def _detail(details: Details | None, field: str, default: Any = "") -> Any:
    return details[0].get(field, default) if details else default


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


class InvalidInputError(NatsflowError):
    """Input that can never be accepted as it is: a malformed request, an impossible value, an
    id or name outside its alphabet or length. Sending it again does not help."""

    api_code = "invalid"


class BpmnValidationError(InvalidInputError):
    """The model cannot be deployed. ``errors`` lists every issue found, not only the first."""

    api_code = "invalid.bpmn"

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

    def api_details(self) -> Details:
        return [{"line": i.line, "element_id": i.element_id, "message": i.message} for i in self.errors]

    @classmethod
    def from_api(cls, message: str, details: Details | None) -> Self:
        issues = [
            ValidationIssue(d.get("element_id"), d.get("line"), str(d.get("message", "")))
            for d in details or []
        ]
        return cls(issues)._with_message(message)


class ExpressionError(InvalidInputError):
    """A FEEL expression could not be compiled or evaluated."""

    api_code = "invalid.expression"


class FeelSyntaxError(ExpressionError):
    """The expression does not parse. ``column`` is 1-based within ``expression``."""

    api_code = "invalid.expression.syntax"

    def __init__(self, expression: str, column: int, message: str) -> None:
        self.expression = expression
        self.column = column
        self.message = message
        super().__init__(f"FEEL syntax error at column {column} of '{expression}': {message}")

    def api_details(self) -> Details:
        return [{"expression": self.expression, "column": self.column, "message": self.message}]

    @classmethod
    def from_api(cls, message: str, details: Details | None) -> Self:
        column = _detail(details, "column", 0)
        exc = cls(str(_detail(details, "expression")), int(column), str(_detail(details, "message")))
        return exc._with_message(message)


class FeelEvaluationError(ExpressionError):
    """The expression failed at evaluation (for example a function called with bad arguments)."""

    api_code = "invalid.expression.evaluation"

    def __init__(self, expression: str, message: str) -> None:
        self.expression = expression
        self.message = message
        super().__init__(f"failed to evaluate '{expression}': {message}")

    def api_details(self) -> Details:
        return [{"expression": self.expression, "message": self.message}]

    @classmethod
    def from_api(cls, message: str, details: Details | None) -> Self:
        exc = cls(str(_detail(details, "expression")), str(_detail(details, "message")))
        return exc._with_message(message)


class MappingConfigError(InvalidInputError):
    """An expression of a trigger definition does not compile."""

    api_code = "invalid.trigger"


class InvalidNameError(InvalidInputError, ValueError):
    """A value that becomes part of a NATS subject, key or consumer name is refused where it
    enters: ``field`` names it, ``rule`` says what it must be (the limits are listed in
    :mod:`natsflow_engine.layout`)."""

    api_code = "invalid.name"

    def __init__(self, field: str, value: str, rule: str) -> None:
        self.field = field
        self.rule = rule
        shown = value if len(value) <= 40 else f"{value[:40]}... ({len(value)} characters)"
        super().__init__(f"invalid {field} {shown!r}: {rule}")

    def api_details(self) -> Details:
        return [{"field": self.field, "rule": self.rule}]

    @classmethod
    def from_api(cls, message: str, details: Details | None) -> Self:
        exc = cls(str(_detail(details, "field")), "", str(_detail(details, "rule")))
        return exc._with_message(message)


class InvalidKeyError(InvalidInputError, ValueError):
    """An NKey seed, public key or signature is malformed, of the wrong kind, or does not
    verify; or a JWT is not a valid NATS JWT (not nats-py's ``InvalidKeyError`` of KV keys)."""

    api_code = "invalid.nkey"


class AuthError(InvalidInputError):
    """A console users document that cannot be used (the message names the entry and field)."""

    api_code = "invalid.users"


class NotFoundError(NatsflowError):
    """The instance, definition, task or incident does not exist."""

    api_code = "not_found"


class ConflictError(NatsflowError):
    """The state does not allow it (cancelling an ended instance), or a concurrent change won."""

    api_code = "conflict"


class ConcurrentUpdateError(ConflictError):
    """A compare-and-set lost every try of its retry policy to concurrent writers."""

    api_code = "conflict.concurrent"

    def __init__(self, key: str, attempts: int) -> None:
        self.key = key
        self.attempts = attempts
        super().__init__(f"{key}: changed concurrently {attempts} times in a row; try again")

    def api_details(self) -> Details:
        return [{"key": self.key, "attempts": self.attempts}]

    @classmethod
    def from_api(cls, message: str, details: Details | None) -> Self:
        exc = cls(str(_detail(details, "key")), int(_detail(details, "attempts", 0)))
        return exc._with_message(message)


class PayloadTooLargeError(NatsflowError):
    """A payload is larger than the configured limit."""

    api_code = "too_large"


def _size(n: int) -> str:
    """``1.2 MB (1258291 bytes)``: readable, and exact where the rounding hides the excess."""
    for unit, scale in (("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f}".removesuffix(".0") + f" {unit} ({n} bytes)"
    return f"{n} bytes"


class RecordTooLargeError(PayloadTooLargeError):
    """A step's record (with its outbox) is larger than the bucket's value limit; nothing was written."""

    api_code = "too_large.record"

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"the instance record would be {_size(size)}; the limit is {_size(limit)}")

    def api_details(self) -> Details:
        return [{"size": self.size, "limit": self.limit}]

    @classmethod
    def from_api(cls, message: str, details: Details | None) -> Self:
        exc = cls(int(_detail(details, "size", 0)), int(_detail(details, "limit", 0)))
        return exc._with_message(message)


class RecordMigrationError(NatsflowError):
    """An instance record of an unknown version, or one its version's migration cannot read."""

    api_code = "internal.migration"


class UnsupportedError(NatsflowError):
    """This build cannot do what was asked (a newer protocol version, a missing module)."""

    api_code = "unsupported"


class ForbiddenError(NatsflowError):
    """The API server's authorization hook refused the request."""

    api_code = "forbidden"


class PermissionViolationError(ForbiddenError):
    """NATS refused to let this connection publish or subscribe to ``subject``
    (``-ERR 'Permissions Violation ...'``): the credentials do not allow it."""

    api_code = "forbidden.nats"

    def __init__(self, message: str, subject: str = "") -> None:
        self.subject = subject
        super().__init__(message)

    def api_details(self) -> Details:
        return [{"subject": self.subject}]

    @classmethod
    def from_api(cls, message: str, details: Details | None) -> Self:
        return cls(message, str(_detail(details, "subject")))


class ConnectionFailedError(NatsflowError):
    """NATS could not be reached, or no server answered a request in time."""

    api_code = "unavailable"


class ApiError(NatsflowError):
    """An error reply whose code this client does not know (a newer server); ``code`` is the code."""

    api_code = "unknown"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.api_code = code

    def api_details(self) -> Details:
        return [{"code": self.code}]

    @classmethod
    def from_api(cls, message: str, details: Details | None) -> Self:
        return cls(str(_detail(details, "code", cls.api_code)), message)


class FeelBudgetError(FeelEvaluationError):
    """The expression went past its evaluation budget (``limit`` names which one, e.g.
    ``max_steps``, and ``value`` its value); see ``natsflow_engine.feel.limits``."""

    api_code = "invalid.expression.budget"

    def __init__(self, expression: str, message: str, limit: str, value: int) -> None:
        self.limit = limit
        self.value = value
        super().__init__(expression, message)

    def api_details(self) -> Details:
        return [{"expression": self.expression, "message": self.message, "limit": self.limit, "value": self.value}]

    @classmethod
    def from_api(cls, message: str, details: Details | None) -> Self:
        expression, text = str(_detail(details, "expression")), str(_detail(details, "message"))
        exc = cls(expression, text, str(_detail(details, "limit")), int(_detail(details, "value", 0)))
        return exc._with_message(message)


class BpmnError(NatsflowError):
    """A business error thrown by a worker; caught by an error boundary or event sub-process.

    Uncaught, it raises an incident on the instance (Camunda 8 semantics).
    """

    api_code = "bpmn_error"

    def __init__(self, code: str, message: str = "", variables: dict[str, Any] | None = None) -> None:
        self.code = code
        self.message = message
        self.variables = dict(variables or {})
        super().__init__(f"BPMN error '{code}'" + (f": {message}" if message else ""))

    def api_details(self) -> Details:
        return [{"code": self.code, "message": self.message, "variables": self.variables}]

    @classmethod
    def from_api(cls, message: str, details: Details | None) -> Self:
        exc = cls(str(_detail(details, "code")), str(_detail(details, "message")), _detail(details, "variables", {}))
        return exc._with_message(message)


class JobFailure(NatsflowError):
    """Raised by a worker handler: the job failed with ``message``.

    With ``retry=True`` (the default, and what any other exception means) the job is retried
    while the task has retries left. With ``retry=False`` it is not retried: the job becomes an
    incident on the instance at once, with ``message``, whatever retries are left (for
    failures that another attempt cannot fix, such as a rejected card number).
    """

    api_code = "job_failed"

    def __init__(self, message: str, *, retry: bool = True) -> None:
        self.message = message
        self.retry = retry
        super().__init__(message)

    def api_details(self) -> Details:
        return [{"retry": self.retry}]

    @classmethod
    def from_api(cls, message: str, details: Details | None) -> Self:
        return cls(message, retry=bool(_detail(details, "retry", True)))


class MessageRejectedError(NatsflowError):
    """A trigger message that can never launch an instance: it is dead-lettered with the reason
    ``kind: message`` (``kind`` is ``payload``, ``mapping``, ``too_large`` or ``invalid``)."""

    api_code = "rejected"

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message

    def api_details(self) -> Details:
        return [{"kind": self.kind, "message": self.message}]

    @classmethod
    def from_api(cls, message: str, details: Details | None) -> Self:
        return cls(str(_detail(details, "kind")), str(_detail(details, "message")))._with_message(message)


class ClaimsUpdateError(NatsflowError):
    """The resolver refused an account JWT, or no server answered the update."""

    api_code = "claims_update"


class KubeError(NatsflowError):
    """The Kubernetes API server answered with an error status."""

    api_code = "kubernetes"

    def __init__(self, status: int, method: str, path: str, message: str) -> None:
        self.status = status
        self.method = method
        self.path = path
        self.message = message
        super().__init__(f"{method} {path}: HTTP {status}: {message}")

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    def api_details(self) -> Details:
        return [{"status": self.status, "method": self.method, "path": self.path, "message": self.message}]

    @classmethod
    def from_api(cls, message: str, details: Details | None) -> Self:
        status = int(_detail(details, "status", 0))
        exc = cls(status, str(_detail(details, "method")), str(_detail(details, "path")), str(_detail(details, "message")))
        return exc._with_message(message)


class MissingReference(NatsflowError):
    """A Secret or ConfigMap the spec refers to does not exist (yet); ``reason`` is the
    condition reason the operator reports."""

    api_code = "missing_reference"

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)

    def api_details(self) -> Details:
        return [{"reason": self.reason}]

    @classmethod
    def from_api(cls, message: str, details: Details | None) -> Self:
        return cls(str(_detail(details, "reason")), message)


def error_classes() -> dict[str, type[NatsflowError]]:
    """Every class of the tree by its API code (the tree is this module's classes)."""
    found: dict[str, type[NatsflowError]] = {}
    pending: list[type[NatsflowError]] = [NatsflowError]
    while pending:
        cls = pending.pop()
        if cls.__module__ != __name__:
            continue
        if cls.api_code in found:
            raise TypeError(f"{cls.__name__} and {found[cls.api_code].__name__} share code {cls.api_code!r}")
        found[cls.api_code] = cls
        pending.extend(cls.__subclasses__())
    return found


_CLASSES = error_classes()


def error_class(code: str) -> type[NatsflowError] | None:
    """The class of ``code``; for an unknown code the class of its longest known dotted prefix;
    None when not even the category is known."""
    while code:
        cls = _CLASSES.get(code)
        if cls is not None:
            return cls
        code = code.rpartition(".")[0]
    return None
