"""The public surface is what we mean it to be: nothing leaves or enters it by accident."""

from __future__ import annotations

import pkgutil
import re
from pathlib import Path

import natsflow
import natsflow.client
import natsflow.errors
import natsflow.testing
import natsflow.worker

ROOT = Path(__file__).resolve().parents[1]

ERRORS = [
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
]
"""The errors most users catch, also at the top level."""
TREE = [
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
]
"""natsflow.errors: the whole error tree of natsflow_engine.errors."""
SURFACE = {
    natsflow: [*ERRORS, "__version__"],
    natsflow.errors: TREE,
    natsflow.worker: ["BpmnError", "Job", "JobConsumerSettings", "JobFailure", "RetryBackoff", "Worker"],
    natsflow.testing: [
        "EmbeddedNatsServer",
        "IncidentView",
        "InstanceSnapshot",
        "ProcessTestEngine",
        "UserTaskView",
        "VirtualClock",
    ],
    natsflow.client: ["ApiClient", "ApiError"],
}
PUBLIC_MODULES = {"natsflow", "natsflow.errors", "natsflow.worker", "natsflow.testing", "natsflow.client"}
OTHER_MODULES = {"natsflow.cli", "natsflow.pytest_plugin"}
"""The command line and the pytest plugin: used by name, not imported by users."""


def test_exported_names() -> None:
    for module, names in SURFACE.items():
        assert sorted(module.__all__) == sorted(names), module.__name__
        for name in names:
            assert getattr(module, name) is not None, f"{module.__name__}.{name}"


def test_no_new_public_module_by_accident() -> None:
    found = {
        f"natsflow.{m.name}" for m in pkgutil.iter_modules(natsflow.__path__) if not m.name.startswith("_")
    }
    assert found | {"natsflow"} == PUBLIC_MODULES | OTHER_MODULES


def test_docs_import_only_public_modules() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for page in pages:
        for block in re.findall(r"```[a-z]*\n(.*?)```", page.read_text(), flags=re.S):
            for module in re.findall(r"^\s*(?:from|import)\s+([\w.]+)", block, flags=re.M):
                if module.split(".")[0].startswith("natsflow"):
                    assert module in PUBLIC_MODULES, f"{page.name} imports {module}, which is not public"
