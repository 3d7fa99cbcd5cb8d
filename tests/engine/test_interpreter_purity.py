"""Static gates on the interpreter: no I/O, no wall clock, no imports at call time.

The import contracts themselves are in ``.importlinter`` (checked by ``tests/test_static.py``);
these tests check that every module of the runtime is either covered by the pure-core contract
or one of the known I/O adapters, that the contract really breaks on a NATS import, and what
import-linter cannot see: reads of the wall clock and imports inside functions.
"""

from __future__ import annotations

import ast
import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ROOT / "engine" / "natsflow_engine" / "runtime"

ADAPTERS = {"__init__", "engine", "messaging", "setup", "definitions", "forms", "timers", "origin", "poison"}
"""Runtime modules that do I/O or serve the ones that do (the engine adapter and its helpers)."""

CLOCK_READS = {"now", "utcnow", "today", "time", "time_ns", "monotonic", "monotonic_ns", "perf_counter"}
ALLOWED_CLOCK_READS = {("records", "new_id")}  # ids for launchers (API, test kit), never used by a step


def pure_modules() -> list[str]:
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    sources = config["importlinter:contract:pure-core"]["source_modules"].split()
    prefix = "natsflow_engine.runtime."
    return [m[len(prefix) :] for m in sources if m.startswith(prefix)]


def test_every_runtime_module_is_pure_or_a_known_adapter() -> None:
    modules = {p.stem for p in RUNTIME.glob("*.py")}
    pure = set(pure_modules())
    assert not pure & ADAPTERS
    assert modules == pure | ADAPTERS, f"unclassified: {sorted(modules - pure - ADAPTERS)}"


def _functions(tree: ast.AST) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


def clock_reads(source: str, module: str) -> list[str]:
    found = []
    for fn in _functions(ast.parse(source)):
        for node in ast.walk(fn):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in CLOCK_READS
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id in {"datetime", "date", "time"}
                and (module, fn.name) not in ALLOWED_CLOCK_READS
            ):
                found.append(f"{module}.{fn.name}: {ast.unparse(node)}")
    return found


def test_interpreter_reads_no_wall_clock() -> None:
    found = [hit for name in pure_modules() for hit in clock_reads((RUNTIME / f"{name}.py").read_text(), name)]
    assert not found, "the interpreter takes its time from the step's `now`, never the wall clock"


def test_the_clock_gate_sees_clock_reads() -> None:
    source = (RUNTIME / "events.py").read_text()
    probes = ["datetime.now(UTC)", "time.time()", "date.today()", "time.monotonic()"]
    for probe in probes:
        assert clock_reads(source.replace("self.c.x.now", probe), "events"), probe
    assert clock_reads((RUNTIME / "records.py").read_text(), "records") == []


def test_interpreter_imports_only_at_module_level() -> None:
    found = []
    for name in pure_modules():
        tree = ast.parse((RUNTIME / f"{name}.py").read_text())
        for fn in _functions(tree):
            found += [f"{name}.{fn.name}" for node in ast.walk(fn) if isinstance(node, ast.Import | ast.ImportFrom)]
    assert not found


PROBES = [
    ("loops", "import nats", "natsflow_engine.runtime.loops -> nats"),
    ("events", "from natsflow_engine.runtime import engine", "natsflow_engine.runtime.events -> natsflow_engine.runtime.engine"),
    ("loops", "from natsflow_engine.runtime import tokens", "natsflow_engine.runtime.loops -> natsflow_engine.runtime.tokens"),
    ("context", "from natsflow_engine.runtime import interpreter", "natsflow_engine.runtime.context -> natsflow_engine.runtime.interpreter"),
]


@pytest.mark.parametrize(("module", "line", "reported"), PROBES, ids=[p[0] + ": " + p[1] for p in PROBES])
def test_a_forbidden_import_breaks_the_contracts(tmp_path: Path, module: str, line: str, reported: str) -> None:
    """Copy the engine package, add the import to one interpreter module, run import-linter:
    NATS or the engine in any interpreter module, one part importing another, a lower layer
    importing a higher one each break a contract."""
    copy = tmp_path / "natsflow_engine"
    shutil.copytree(ROOT / "engine" / "natsflow_engine", copy, ignore=shutil.ignore_patterns("__pycache__"))
    probe = copy / "runtime" / f"{module}.py"
    future = "from __future__ import annotations\n"
    probe.write_text(probe.read_text().replace(future, f"{future}{line}  # probe\n", 1))
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache", "--config", str(ROOT / ".importlinter")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode != 0
    assert reported in result.stdout
