"""One error tree: every class has its own API code, the client rebuilds the class the server
answered with, and every error class of the project lives in the tree."""

from __future__ import annotations

import importlib
import pkgutil

import msgspec
import natsflow_console
import natsflow_engine
import natsflow_operator
import pytest
from natsflow_engine import errors as e
from natsflow_engine.api import protocol as p

import natsflow
import natsflow.errors

SAMPLES: dict[type[e.NatsflowError], e.NatsflowError] = {
    e.NatsflowError: e.NatsflowError("something broke"),
    e.InvalidInputError: e.InvalidInputError("limit must be between 1 and 1000, not 0"),
    e.BpmnValidationError: e.BpmnValidationError(
        [e.ValidationIssue("f1", 5, "no target"), e.ValidationIssue(None, None, "no start")], source="a.bpmn"
    ),
    e.ExpressionError: e.ExpressionError("bad expression"),
    e.FeelSyntaxError: e.FeelSyntaxError("1 +", 4, "unexpected end"),
    e.FeelEvaluationError: e.FeelEvaluationError("x / 0", "division by zero"),
    e.FeelBudgetError: e.FeelBudgetError("for x in 1..1e9 return x", "past 100000 steps", "max_steps", 100_000),
    e.MappingConfigError: e.MappingConfigError("variable 'x': syntax"),
    e.InvalidNameError: e.InvalidNameError("instance", "a.b", "use 1 to 64 letters, digits, '_' or '-'"),
    e.InvalidKeyError: e.InvalidKeyError("not a JWT (three dot-separated parts)"),
    e.ClaimsUpdateError: e.ClaimsUpdateError("the resolver refused the account JWT"),
    e.AuthError: e.AuthError("users[0].token: a string of 16 to 512 characters"),
    e.NotFoundError: e.NotFoundError("instance 'x' not found"),
    e.ConflictError: e.ConflictError("instance x is completed already"),
    e.ConcurrentUpdateError: e.ConcurrentUpdateError("shop.x", 20),
    e.PayloadTooLargeError: e.PayloadTooLargeError("too big"),
    e.RecordTooLargeError: e.RecordTooLargeError(1_200_000, 1_048_576),
    e.RecordMigrationError: e.RecordMigrationError("record version 9 is unknown"),
    e.UnsupportedError: e.UnsupportedError("newer version"),
    e.ForbiddenError: e.ForbiddenError("deploy is not allowed"),
    e.PermissionViolationError: e.PermissionViolationError("refused", "nf.api.shop.deploy"),
    e.ConnectionFailedError: e.ConnectionFailedError("no server"),
    e.ApiError: e.ApiError("unknown", "from a newer server"),
    e.BpmnError: e.BpmnError("DECLINED", "card declined", {"reason": "limit"}),
    e.JobFailure: e.JobFailure("card number is invalid", retry=False),
    e.MessageRejectedError: e.MessageRejectedError("payload", "payload is not JSON"),
    e.KubeError: e.KubeError(404, "GET", "/api/v1/x", "not found"),
    e.MissingReference: e.MissingReference("ConfigMapNotFound", "ConfigMap a/b does not exist"),
}


def test_every_class_has_a_distinct_code() -> None:
    classes = e.error_classes()  # raises TypeError when two classes share a code
    assert set(classes.values()) == set(SAMPLES), "add a sample for every class of the tree"
    assert sorted(classes) == list(p.ERROR_CODES)
    assert all(cls.__dict__.get("api_code") for cls in classes.values()), "each class names its own code"


@pytest.mark.parametrize("cls", list(SAMPLES), ids=lambda c: c.__name__)
def test_the_client_rebuilds_the_class_the_server_answered_with(cls: type[e.NatsflowError]) -> None:
    sent = SAMPLES[cls]
    reply = msgspec.json.decode(p.encode_exception(sent), type=p.Reply)  # what travels
    assert reply.error is not None and reply.error.code == cls.api_code
    got = p.decode_error(reply.error)
    assert type(got) is cls
    assert str(got) == str(sent)
    assert got.api_details() == sent.api_details()
    assert e.error_class(cls.api_code) is cls


def test_unknown_codes_map_to_their_category() -> None:
    got = p.decode_error(p.ApiErrorBody(code="invalid.something_new", message="not like this"))
    assert type(got) is e.InvalidInputError and str(got) == "not like this"
    got = p.decode_error(p.ApiErrorBody(code="overloaded", message="later"))
    assert isinstance(got, e.ApiError) and got.code == "overloaded" and got.api_code == "overloaded"


def test_the_tree_is_drawn_with_every_class_and_code() -> None:
    drawing = (e.__doc__ or "").split("::\n\n", 1)[1].split("\n\n", 1)[0]
    drawn = {}
    for line in drawing.splitlines():
        name, code = line.lstrip(" │├└─").split()[:2]
        drawn[name] = code
    assert drawn == {cls.__name__: code for code, cls in e.error_classes().items()}


SIGNALS = {
    # stop a FEEL evaluation from deep inside; CompiledExpression.evaluate turns each into a
    # FeelEvaluationError or FeelBudgetError, so none reaches a caller
    "natsflow_engine.feel.limits.EvaluationAborted",
    "natsflow_engine.feel.limits.BudgetExceeded",
    "natsflow_engine.feel.regex.RegexUnsupported",
}


def _project_modules() -> list[str]:
    names: list[str] = []
    for package in (natsflow_engine, natsflow_operator, natsflow_console, natsflow):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if not info.name.endswith("__main__"):
                names.append(info.name)
    return names


def test_every_error_class_of_the_project_is_in_the_tree() -> None:
    for name in _project_modules():
        importlib.import_module(name)
    pending: list[type[BaseException]] = [Exception]
    outside: list[str] = []
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        module = cls.__module__
        if not module.startswith(("natsflow.", "natsflow_engine.", "natsflow_operator.", "natsflow_console.")):
            continue
        if cls.__name__.startswith("_") or f"{module}.{cls.__name__}" in SIGNALS:
            continue  # control flow inside one part, never raised to a caller
        if module != e.__name__ or not issubclass(cls, e.NatsflowError):
            outside.append(f"{module}.{cls.__name__}")
    assert outside == []


def test_public_errors_are_the_tree() -> None:
    for name in natsflow.errors.__all__:
        assert getattr(natsflow.errors, name) is getattr(e, name)
    assert natsflow.ConnectionFailedError is e.ConnectionFailedError
