"""The ``operator`` extra declares what the operator imports (a fresh ``pip install
'natsflow[operator]'`` must be able to run it)."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import natsflow_operator

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = Path(natsflow_operator.__file__).parent
OWN = {"natsflow", "natsflow_engine", "natsflow_operator"}


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def _imports() -> set[str]:
    found: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
    return found - OWN - set(sys.stdlib_module_names)


def test_operator_extra_declares_every_imported_distribution() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {_name(r) for r in [*project["dependencies"], *project["optional-dependencies"]["operator"]]}
    providers = importlib.metadata.packages_distributions()
    missing = {
        module: providers.get(module)
        for module in _imports()
        if not {_name(d) for d in providers.get(module, [module])} & declared
    }
    assert not missing, f"imported by the operator but not declared (module: distributions): {missing}"


def test_kopf_floor_is_the_release_the_operator_needs() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    (kopf,) = [r for r in project["optional-dependencies"]["operator"] if _name(r) == "kopf"]
    floor = re.search(r">=\s*([0-9.]+)", kopf)
    assert floor, kopf
    assert tuple(int(p) for p in floor.group(1).split(".")) >= (1, 42, 3)
